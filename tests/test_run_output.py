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
    assert f.hold_until <= time.monotonic() + HOLD_S
    assert f.flush() == b"["  # its time is up: it is the script's
    assert f.feed(b"USDT: the rest of that line\n") == b"USDT: the rest of that line\n"
    assert f.hold_until is None
