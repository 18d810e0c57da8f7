"""The script's output as dsprof passes it on: torch's profiler lines dropped, nothing else
touched (dsprof/runner/output.py's NoiseFilter)."""

from __future__ import annotations

import time

from dsprof.runner.output import HOLD_S, NoiseFilter

START = b"USDT:2026-12-07 12:52:05 29064:29064 SyncActivityProfilerHandler.cpp:52] profiler_start"
WARN = b"[W1207 12:52:05.123 collection.cpp:1050] Warning: ROCTracer produced duplicate flow"


def feed_all(chunks: list[bytes]) -> bytes:
    f = NoiseFilter()
    return b"".join(f.feed(c) for c in chunks) + f.flush()


def test_a_noise_line_goes_with_its_newline_even_when_written_apart():
    # torch writes the line and its newline separately: no blank line may be left behind
    assert feed_all([START, b"\n", b"err line\n", START, b"\n"]) == b"err line\n"
    assert feed_all([b"[default0]:" + WARN + b"\n", b"ok\n"]) == b"ok\n"
    assert feed_all([b"US", b"DT:x] profiler_stop", b"\nafter\n"]) == b"after\n"


def test_everything_else_passes_unchanged():
    chunks = [b"\n\n", b"[W1] the script's bracketed line\n", b"progress 5%\rprogress", b" 9%"]
    chunks += [b"USD", b" is a currency\n", b"line with USDT: in it\n", b"\xe9\xff\n", b"[y/N] "]
    assert feed_all(chunks) == b"".join(chunks)


def test_a_partial_line_that_only_looks_like_noise_is_held_briefly():
    f = NoiseFilter()
    assert f.feed(b"[") == b"" and f.hold_until is not None
    began = f.hold_until
    assert began <= time.monotonic() + HOLD_S
    assert f.feed(b"W1") == b"" and f.hold_until == began  # more of it: no longer than that
    assert f.flush() == b"[W1"  # its time is up: it is the script's
    assert f.feed(b"USDT: the rest of that line\n") == b"USDT: the rest of that line\n"
    assert f.hold_until is None


def test_a_line_with_a_noise_mark_waits_for_its_newline_however_long():
    # on a busy machine torch's thread may be descheduled between the line and its newline
    f = NoiseFilter()
    assert f.feed(WARN[:20]) == b"" and f.hold_until is not None  # too short to tell
    assert f.feed(WARN[20:60]) == b"" and f.hold_until is None  # torch's: no time limit
    assert f.feed(WARN[60:]) == b"" and f.hold_until is None
    assert f.feed(b"\nnext\n") == b"next\n"


def test_two_noise_lines_written_into_one_another_leave_no_blank_line():
    # the profiler stops on one thread while a pool thread warns: one line, then its newline
    stop = b"USDT:2026-12-07 13:49:13 3951:4228 SyncActivityProfilerHandler.cpp:59] profiler_stop"
    assert feed_all([stop, WARN, b"\n", b"\n", b"\n", b"the script's blank line above\n"]) == (
        b"\nthe script's blank line above\n"
    )
