"""Mutants of real traces for the reader's fuzz suite (tests/test_trace_fuzz.py), and the contract
`dsprof analyze` must keep on each: exit 0 with a sound document, or exit 2 with one line naming
the file.

Seeds: tests/data/fuzz/*.json.gz are short time windows cut from real traces (bytes as their
writers wrote them: indented or not, key orders, 2021 and current schemas, [memory] events,
ranks), plus tests/data/traces/hta/event_sync_trace.json.gz whole (it has a ProfilerStep).
Mutations: byte level (truncate, delete, insert tokens, flip, duplicate a span, BOM, CRLF) and
JSON level (a field of an event or its args set to a value of the wrong type or out of range,
a field deleted, an event duplicated, moved far in time or dropped, the metadata broken, only
one kind of event kept).
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import json
import math
import random
import warnings
from pathlib import Path
from typing import Any

from dsprof.cli.main import main
from dsprof.trace import load_trace

DATA = Path(__file__).parent / "data"
SEEDS = [
    *sorted((DATA / "fuzz").glob("*.json.gz")),
    DATA / "traces" / "hta" / "event_sync_trace.json.gz",
]
REGRESSIONS = DATA / "fuzz" / "regressions"

# values of the wrong type or out of range, for any field
VALUES: tuple[Any, ...] = (
    None, [], {}, "abc", "", "12", -1, 0, 1, 1.5, -1e6, 1e30, -1e30, 1e17, 2**53, 2**63, 2**64,
    -(2**63) - 1, True, False, [1, 2, 3], ["a", 1, 1], {"a": 1}, "x" * 5000, 1e-300,
    [[1e30, 5]], [[-1, 3]], [[2, "x"]], [[[[[1]]]]], math.nan, math.inf,
)  # fmt: skip
EVENT_FIELDS = ("ts", "dur", "pid", "tid", "name", "cat", "ph", "args", "id", "s")
ARG_KEYS = (
    "Input Dims", "Input type", "Concrete Inputs", "External id", "correlation", "device",
    "stream", "bytes", "grid", "block", "registers per thread", "shared memory", "blocks per SM",
    "warps per SM", "est. achieved occupancy %", "Sequence number", "Bytes", "Total Allocated",
    "Total Reserved", "Device Id", "Device Type",
)  # fmt: skip
META_KEYS = ("schemaVersion", "deviceProperties", "distributedInfo", "baseTimeNanoseconds")
TOKENS = (
    b",", b"{", b"}", b"[", b"]", b'"', b"\\", b":", b" ", b"\n", b"1", b"-", b"e999", b"null",
    b"tru", b"\x00", b"\xff", b"\xc3", b"//", b"NaN", b'"ph": "X", ', b'{"ph": "f"}',
    b"traceEvents", b"\\ud800", b"1" * 400,
)  # fmt: skip


def seed_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def dumps(doc: Any) -> bytes:
    """JSON text of doc; Python's json writes ints of any size (and NaN / Infinity as given)."""
    return json.dumps(doc).encode()


def mutate_bytes(raw: bytes, rng: random.Random) -> bytes:
    """One byte-level mutation."""
    if not raw:
        return rng.choice(TOKENS)
    kind = rng.randrange(9)
    i = rng.randrange(len(raw))
    j = min(len(raw), i + rng.randrange(1, 64))
    if kind == 0:
        return raw[:i]
    if kind == 1:
        return raw[:i] + raw[j:]
    if kind == 2:
        return raw[:i] + rng.choice(TOKENS) + raw[i:]
    if kind == 3:
        return raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1 :]
    if kind == 4:
        return raw[:i] + raw[i:j] * 2 + raw[j:]
    if kind == 5:
        return b"\xef\xbb\xbf" + raw
    if kind == 6:
        return raw.replace(b"\n", b"\r\n")
    if kind == 7:
        return raw[:i] + rng.choice(TOKENS) + raw[j:]
    return raw + rng.choice((b" ", b"\n", b"x", b"{}", b"]"))


def mutate_doc(doc: Any, rng: random.Random) -> Any:
    """One JSON-level mutation of a parsed trace (a copy)."""
    doc = copy.deepcopy(doc)
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    kind = rng.randrange(10)
    if not events:
        return doc
    e = rng.choice(events)
    if kind == 0 and isinstance(e, dict):
        e[rng.choice(EVENT_FIELDS)] = rng.choice(VALUES)
    elif kind == 1 and isinstance(e, dict):
        args = e.setdefault("args", {})
        if isinstance(args, dict):
            key = rng.choice([*args, *ARG_KEYS]) if args else rng.choice(ARG_KEYS)
            args[key] = rng.choice(VALUES)
    elif kind == 2 and isinstance(e, dict) and e:
        e.pop(rng.choice(list(e)))
    elif kind == 3:
        events.insert(rng.randrange(len(events) + 1), copy.deepcopy(e))
    elif kind == 4:
        events.remove(e)
    elif kind == 5 and isinstance(e, dict):
        ts = e.get("ts")
        e["ts"] = (
            rng.choice((0, -1, 1e12, 1e15, 1e17))
            if not isinstance(ts, int | float)
            else (rng.choice((0, ts / 1000, ts * 10, ts + 1e12, ts - 1e12, -ts)))
        )
    elif kind == 6 and isinstance(doc, dict):
        key = rng.choice(META_KEYS)
        doc[key] = rng.choice(
            (
                *VALUES[:12],
                [5],
                [{"computeMajor": "abc", "numSms": -1, "name": 7}],
                {"rank": rng.choice(VALUES)},
                99,
            )
        )
    elif kind == 7:
        steps = [
            x
            for x in events
            if isinstance(x, dict) and str(x.get("name", "")).startswith("ProfilerStep#")
        ]
        if steps:
            step = rng.choice(steps)
            if rng.random() < 0.5:
                step["dur"] = rng.choice((0, -5, None, 1e12, "abc"))
            else:
                step["name"] = rng.choice(("ProfilerStep#" + "9" * 30, "ProfilerStep#-1"))
    elif kind == 8:
        keep = rng.choice(("[memory]", "M", "flows", "none"))
        kept = [
            x
            for x in events
            if isinstance(x, dict)
            and (
                (keep == "[memory]" and x.get("name") == "[memory]")
                or (keep == "M" and x.get("ph") == "M")
                or (keep == "flows" and x.get("ph") in ("s", "f", "t"))
            )
        ]
        events[:] = kept
    elif kind == 9:
        events.insert(rng.randrange(len(events) + 1), rng.choice(VALUES))
    return doc


def mutant(seed: Path, rng: random.Random) -> bytes:
    """A mutant of seed: one to three mutations, JSON level or byte level."""
    raw = seed_bytes(seed)
    doc = json.loads(raw)
    for _ in range(rng.randrange(1, 4)):
        doc = mutate_doc(doc, rng)
    text = dumps(doc) if rng.random() < 0.7 else raw
    if rng.random() < 0.35:
        text = mutate_bytes(text, rng)
    return text


def write(path: Path, data: bytes, rng: random.Random | None = None) -> Path:
    """Write data, gzip'd when path ends in .gz."""
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


def analyze(*paths: Path) -> tuple[int, str, str]:
    """`dsprof analyze --json PATHS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("error", RuntimeWarning)  # numpy's "invalid value" and friends
        code = main(["analyze", "--json", *map(str, paths)])
    return code, out.getvalue(), err.getvalue()


DURATION_UNITS = {"ms": 1e6, "us": 1e3, "s": 1e9}


def check_contract(paths: list[Path], code: int, out: str, err: str) -> None:
    """Exit 0 with a sound document, or exit 2 with one line naming a file; else AssertionError."""
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("dsprof: error: "), err
        assert any(str(p) in lines[0] for p in paths), err
        return
    assert code == 0, f"exit {code}: {err}"
    doc = json.loads(out)
    assert doc["analyzers_failed"] == {}, doc["analyzers_failed"]
    span_ns = max(_span_ns(p) for p in paths)
    for f in doc["findings"]:
        assert 0.0 <= f["impact"] <= 1.0, f
        for ev in f["evidence"]:
            value = ev["value"]
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            assert math.isfinite(value), (f["title"], ev)
            scale = DURATION_UNITS.get(ev["unit"])
            if scale is not None:
                assert value >= 0, (f["title"], ev)
                assert value * scale <= span_ns * 1.001 + 1e3, (f["title"], ev, span_ns)
            if ev["unit"] in ("fraction", "of window", "of step", "of steps", "%"):
                assert value >= 0, (f["title"], ev)


def _span_ns(path: Path) -> int:
    """From the first start to the last end of the events analysed in path (after validation)."""
    tf = load_trace(path)
    tables = [df for df in (tf.cpu, tf.runtime, tf.gpu, tf.memory) if len(df)]
    return int(max(df["end_ns"].max() for df in tables) - min(df["ts_ns"].min() for df in tables))
