"""Check once every field the engine reads; drop what fails and say so in notices.

Sits between the raw columns (dsprof.trace.columns) and the frames (dsprof.trace.frames), in the
parse worker (numpy only). Past this point no analyzer has to defend itself against types:

- rows: the fields the column builder could not store (its "invalid" bits: a name that is not
  a string, a ts that is not a number, args that are not an object, ...) and values out of range
  (a negative dur, a ts that would overflow the epoch clock, a negative occupancy, Input Dims
  that are not shapes, a ProfilerStep of zero length) drop the event; each reason is counted
  and the `events-dropped` notice says how many and why. A trace where more than
  MAX_INVALID_SHARE of the events fail is refused.
- time outliers: events separated from the rest of the trace by a gap longer than
  OUTLIER_GAP_NS and OUTLIER_GAP_FACTOR times the rest's span (a ts of 0 among epoch times)
  cannot stretch the window: they are cut (`window-outliers-cut`), at most OUTLIER_MAX_POINTS.
- metadata: deviceProperties entries and fields of the wrong type, a distributedInfo rank that
  is not an integer, a baseTimeNanoseconds that is not a time are left out (`metadata-ignored`);
  a schemaVersion other than KNOWN_SCHEMA_VERSIONS is said (`unknown-schema-version`).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import orjson

from dsprof.core.errors import TraceError
from dsprof.trace import columns as c

# Kineto writes "schemaVersion": 1 (every trace in ../shared/traces, 2020 to 2026)
KNOWN_SCHEMA_VERSIONS = frozenset({1})
# more invalid events than this share of the trace's events: the trace is refused, since what
# remains would not describe it
MAX_INVALID_SHARE = 0.5
# a gap in the trace's event times longer than both of these cuts what lies beyond it, when
# that holds at most OUTLIER_MAX_POINTS start/end points or OUTLIER_MAX_SHARE of them. One
# profiler session records without holes of ten minutes; a clock error or a ts of 0 makes one.
OUTLIER_GAP_NS = 10 * 60 * 1_000_000_000
OUTLIER_GAP_FACTOR = 10
OUTLIER_MAX_POINTS = 16
OUTLIER_MAX_SHARE = 0.01
BASE_TIME_LIMIT_NS = 1 << 62
RANK_LIMIT = 1 << 31
STEP_RE = re.compile(r"^ProfilerStep#(\d+)$")
STEP_LIMIT = 1 << 62
DIM_LIMIT = 1 << 48  # one dimension of a tensor shape
SHAPE_DEPTH = 3  # Input Dims: [tensor shapes] or [[shapes of a tensor list]]

# what each reason for dropping an event says in the notice
INVALID_WHY: dict[int, str] = {
    c.BAD_NAME: "a name that is not a string",
    c.BAD_TS: "a ts that is missing, not a number or out of range",
    c.BAD_DUR: "a dur that is missing, not a number or out of range",
    c.BAD_THREAD: "a pid or tid that is not an integer",
    c.BAD_ARGS: "args that are not an object",
    c.BIG_ARGS: "args over 1 MiB",
    c.BAD_IDS: "an External id, correlation or Sequence number that is not an integer",
    c.BAD_PLACE: "a device, stream or Device Id that is not an integer",
    c.BAD_BYTES: "a byte count that is not an integer",
    c.BAD_LAUNCH: "a grid, block, registers or occupancy value out of type or range",
    c.BAD_SHAPES: "Input Dims, Input type or Concrete Inputs that are malformed",
}
NEGATIVE_DUR = 1 << 20
BAD_STEP = 1 << 21
INVALID_WHY[NEGATIVE_DUR] = "a negative dur"
INVALID_WHY[BAD_STEP] = "a ProfilerStep of zero length or with a step number out of range"

# deviceProperties fields the engine reads, and what each must be
_DEVICE_FIELDS: dict[str, tuple[type, int]] = {
    "id": (int, -1),
    "numSms": (int, 1),
    "computeMajor": (int, 0),
    "computeMinor": (int, 0),
    "totalGlobalMem": (int, 1),
    "name": (str, 0),
}


def validate(
    tables: dict[str, dict[str, np.ndarray]],
    strings: dict[str, list[Any]],
    metadata: dict[str, Any],
    *,
    path: Any,
    dropped_before: Counter[str],
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any], list[tuple[str, str]]]:
    """(the tables without invalid rows and outliers, sanitised metadata, notices).

    dropped_before: events the reader and the column builder could not place in a table, by
    reason (not JSON objects, a cat that is not a string). Raises TraceError when too many fail.
    """
    notices = check_metadata(metadata)
    metadata, ignored = sanitise_metadata(metadata)
    if ignored:
        notices.append(("metadata-ignored", f"{'; '.join(ignored)}: left out"))
    base = int(metadata.get("baseTimeNanoseconds") or 0)
    reasons: Counter[str] = Counter(dropped_before)
    bad_shapes = _bad_shape_codes(strings["shapes"])
    steps = _step_codes(strings["names"])
    read = sum(dropped_before.values())
    for kind, cols in tables.items():
        read += len(cols["ts_ns"])
        invalid = _row_problems(cols, base, bad_shapes, steps, kind)
        if invalid.any():
            _count(reasons, invalid[invalid != 0])
            tables[kind] = _take(cols, invalid == 0)
    dropped = sum(reasons.values())
    if read and dropped > MAX_INVALID_SHARE * read:
        raise TraceError(
            f"{dropped:,} of {read:,} events are invalid ({_why(reasons)}): "
            "too few are left to describe the trace",
            path=path,
        )
    if dropped:
        notices.append(
            ("events-dropped", f"{dropped:,} of {read:,} events dropped: {_why(reasons)}")
        )
    cut = cut_outliers(tables, base)
    if cut:
        notices.append(("window-outliers-cut", cut))
    return tables, metadata, [(code, f"{path}: {message}") for code, message in notices]


def check_metadata(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """Notices (code, message) about the trace's top-level keys."""
    notices = []
    version = metadata.get("schemaVersion")
    if "schemaVersion" in metadata and not (
        type(version) is int and version in KNOWN_SCHEMA_VERSIONS
    ):
        known = ", ".join(map(str, sorted(KNOWN_SCHEMA_VERSIONS)))
        notices.append(
            (
                "unknown-schema-version",
                f"schemaVersion {_short(version)} is not one this reader knows ({known}): "
                "the events were read as schema 1, so findings may miss or misread new fields",
            )
        )
    return notices


def sanitise_metadata(metadata: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(metadata with the fields the engine reads made well-typed, what was left out)."""
    meta = dict(metadata)
    ignored = []
    base = meta.get("baseTimeNanoseconds")
    if "baseTimeNanoseconds" in meta and not (
        base is None or (type(base) is int and 0 <= base < BASE_TIME_LIMIT_NS)
    ):
        ignored.append(
            f"baseTimeNanoseconds {_short(base)} is not a time (times are read as recorded)"
        )
        del meta["baseTimeNanoseconds"]
    props = meta.get("deviceProperties")
    if "deviceProperties" in meta and props is not None:
        if type(props) is not list:
            ignored.append(f"deviceProperties {_short(props)} is not a list")
            meta["deviceProperties"] = []
        else:
            clean, dropped = _clean_devices(props)
            if dropped:
                ignored.append(f"{dropped} deviceProperties entries or fields of the wrong type")
            meta["deviceProperties"] = clean
    info = meta.get("distributedInfo")
    if "distributedInfo" in meta and info is not None:
        if type(info) is not dict:
            ignored.append(f"distributedInfo {_short(info)} is not an object")
            del meta["distributedInfo"]
        elif "rank" in info and not (type(info["rank"]) is int and 0 <= info["rank"] < RANK_LIMIT):
            ignored.append(f"distributedInfo rank {_short(info['rank'])} is not a rank")
            meta["distributedInfo"] = {k: v for k, v in info.items() if k != "rank"}
    return meta, ignored


def _clean_devices(props: list[Any]) -> tuple[list[dict[str, Any]], int]:
    clean, dropped = [], 0
    for p in props:
        if type(p) is not dict:
            dropped += 1
            continue
        entry = dict(p)
        for key, (kind, low) in _DEVICE_FIELDS.items():
            if key not in entry:
                continue
            v: Any = entry[key]
            ok = type(v) is str if kind is str else (type(v) is int and low <= v < (1 << 62))
            if not ok:
                del entry[key]
                dropped += 1
        clean.append(entry)
    return clean, dropped


def _row_problems(
    cols: dict[str, np.ndarray],
    base: int,
    bad_shapes: np.ndarray,
    steps: tuple[np.ndarray, np.ndarray],
    kind: str,
) -> np.ndarray:
    """Each row's reasons to drop it: the builder's invalid bits plus the range checks."""
    invalid = cols["invalid"].astype(np.uint32)
    if not len(invalid):
        return invalid
    dur = cols["dur_ns"]
    invalid |= np.where(dur < 0, NEGATIVE_DUR, 0).astype(np.uint32)
    # ts + dur + baseTimeNanoseconds must stay on int64's clock
    limit = c.INT64_MAX - base - np.maximum(dur, 0)
    invalid |= np.where(cols["ts_ns"] > limit, c.BAD_TS, 0).astype(np.uint32)
    if kind == "cpu":
        is_step, bad_step = steps[0][cols["name"]], steps[1][cols["name"]]
        invalid |= np.where(bad_step | (is_step & (dur == 0)), BAD_STEP, 0).astype(np.uint32)
        if len(bad_shapes):
            shaped = (
                bad_shapes[cols["input_dims"]]
                | bad_shapes[cols["input_types"]]
                | bad_shapes[cols["concrete_inputs"]]
            )
            invalid |= np.where(shaped, c.BAD_SHAPES, 0).astype(np.uint32)
    if kind == "gpu":
        launch = (
            (cols["blocks_per_sm"] < 0)
            | (cols["warps_per_sm"] < 0)
            | (cols["occupancy_pct"] < 0)
            | (cols["occupancy_pct"] > 100)
            | (cols["registers"] < -1)
            | (cols["shared_mem_bytes"] < -1)
            | (cols["blocks_per_sm"] >= c.INT64_MAX)
            | (cols["warps_per_sm"] >= c.INT64_MAX)
        )
        invalid |= np.where(launch | (cols["bytes"] < -1), c.BAD_LAUNCH, 0).astype(np.uint32)
    if kind == "memory":
        counters = (cols["total_allocated"] < -1) | (cols["total_reserved"] < -1)
        invalid |= np.where(counters, c.BAD_BYTES, 0).astype(np.uint32)
    return invalid


def _step_codes(names: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per name code: (is a ProfilerStep#N, N does not fit the frames' int64 step column)."""
    steps = np.zeros(len(names), dtype=bool)
    bad = np.zeros(len(names), dtype=bool)
    for i, name in enumerate(names):
        if type(name) is str and name.startswith("ProfilerStep#"):
            m = STEP_RE.match(name)
            if m:
                steps[i] = True
                bad[i] = int(m.group(1)) >= STEP_LIMIT
    return steps, bad


def _bad_shape_codes(shapes: list[Any]) -> np.ndarray:
    """Per shapes code: True where the JSON text is not what roofline and the CPU analyzers read
    (Input Dims: lists of non-negative integer dimensions; Input type / Concrete Inputs: lists)."""
    bad = np.zeros(len(shapes), dtype=bool)
    for i, text in enumerate(shapes):
        if not text:
            continue
        if len(text) > c.MAX_SHAPES_BYTES:
            bad[i] = True
            continue
        value = orjson.loads(text)
        bad[i] = type(value) is not list or not all(map(_argument_ok, value))
    return bad


def _argument_ok(v: Any) -> bool:
    """One element of Input Dims, Input type or Concrete Inputs: a shape (a list of
    dimensions), a list of shapes, a dtype or argument text, a number, or null."""
    return _dims_ok(v, 1) if type(v) is list else type(v) in _SCALARS


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _dims_ok(v: list[Any], depth: int) -> bool:
    """A shape (integers in 0..DIM_LIMIT) or, up to SHAPE_DEPTH, a list of such lists."""
    kinds = set(map(type, v))
    if kinds <= {int}:
        return not v or (min(v) >= 0 and max(v) < DIM_LIMIT)
    if kinds <= {list} and depth < SHAPE_DEPTH:
        return all(_dims_ok(x, depth + 1) for x in v)
    return False


def _count(reasons: Counter[str], invalid: np.ndarray) -> None:
    """Count each dropped row once, under its lowest reason bit."""
    lowest = invalid & (~invalid + np.uint32(1))
    for bit, n in zip(*np.unique(lowest, return_counts=True), strict=True):
        reasons[INVALID_WHY.get(int(bit), "an invalid field")] += int(n)


def _take(cols: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[keep] for k, v in cols.items()}


def _why(reasons: Counter[str]) -> str:
    return ", ".join(f"{n:,} with {why}" for why, n in reasons.most_common())


def cut_outliers(tables: dict[str, dict[str, np.ndarray]], base: int) -> str:
    """Drop the events far outside the rest of the trace (see the module docstring); returns
    what the notice says, "" when nothing was cut."""
    starts = [cols["ts_ns"] for cols in tables.values() if len(cols["ts_ns"])]
    if not starts:
        return ""
    ends = [cols["ts_ns"] + cols["dur_ns"] for cols in tables.values() if len(cols["ts_ns"])]
    lo = min(int(s.min()) for s in starts)
    hi = max(int(e.max()) for e in ends)
    if hi - lo <= OUTLIER_GAP_NS:  # no gap can be long enough: nothing to sort
        return ""
    points = np.sort(np.concatenate(starts + ends))
    keep_lo, keep_hi = _dense_range(points)
    if keep_lo == int(points[0]) and keep_hi == int(points[-1]):
        return ""
    n_cut = 0
    for kind, cols in tables.items():
        inside = (cols["ts_ns"] >= keep_lo) & (cols["ts_ns"] + cols["dur_ns"] <= keep_hi)
        if not inside.all():
            n_cut += int((~inside).sum())
            tables[kind] = _take(cols, inside)
    span_s = (keep_hi - keep_lo) / 1e9
    return (
        f"{n_cut:,} events lie far outside the rest of the trace ({_gap_text(points, keep_lo, keep_hi)}"
        f" away; the rest spans {span_s:.3g} s) and were cut from the analysis"
    )


def _dense_range(points: np.ndarray) -> tuple[int, int]:
    """(first, last) point of the trace's body: the largest run of points without a long gap,
    widened over neighbouring runs unless an impossible gap and few points set them apart."""
    gaps = np.diff(points)
    cuts = np.flatnonzero(gaps > OUTLIER_GAP_NS)
    bounds = np.concatenate([[0], cuts + 1, [len(points)]])
    sizes = np.diff(bounds)
    main = int(np.argmax(sizes))
    first, last = main, main  # the runs kept, by index
    allowed = max(OUTLIER_MAX_POINTS, int(OUTLIER_MAX_SHARE * len(points)))
    while True:
        span = int(points[bounds[last + 1] - 1] - points[bounds[first]])
        limit = max(OUTLIER_GAP_NS, OUTLIER_GAP_FACTOR * span)
        grown = False
        if first > 0:
            gap = int(points[bounds[first]] - points[bounds[first] - 1])
            if gap <= limit or int(bounds[first]) > allowed:
                first -= 1
                grown = True
        if last < len(sizes) - 1:
            gap = int(points[bounds[last + 1]] - points[bounds[last + 1] - 1])
            if gap <= limit or len(points) - int(bounds[last + 1]) > allowed:
                last += 1
                grown = True
        if not grown:
            return int(points[bounds[first]]), int(points[bounds[last + 1] - 1])


def _gap_text(points: np.ndarray, lo: int, hi: int) -> str:
    """How far the cut points lie from the kept range, in words."""
    far = max(lo - int(points[0]), int(points[-1]) - hi)
    for unit, ns in (("days", 86_400e9), ("hours", 3_600e9), ("minutes", 60e9)):
        if far >= ns:
            return f"up to {far / ns:.3g} {unit}"
    return f"up to {far / 1e9:.3g} s"


def _short(value: Any, limit: int = 40) -> str:
    """A value as JSON-ish text, cut to limit characters, for a message."""
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= limit else text[: limit - 3] + "..."
