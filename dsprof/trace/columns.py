"""Turn chunks of raw Kineto event dicts into typed columns, one table per kind of event.

Category names of both schemas map onto one vocabulary (KIND_OF_CAT). Per chunk, events are grouped
by category and only the fields a kind needs are pulled out into numpy columns. Strings are
interned into int32 codes shared across chunks (Interner), so a name repeated a million times is
stored once. Flows, metadata ('M') and profiler spans are dropped here. Only numpy and orjson are
needed up to ColumnBuilder.columns(); to_frames() makes the pandas tables.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

if TYPE_CHECKING:
    import pandas as pd

# Kineto category -> table. 2021 names (Operator/Runtime/Kernel/Memcpy/Memset) and current ones.
KIND_OF_CAT: dict[str, str] = {
    "cpu_op": "cpu",
    "Operator": "cpu",
    "user_annotation": "cpu",
    "python_function": "cpu",
    "cuda_runtime": "runtime",
    "Runtime": "runtime",
    "cuda_driver": "runtime",
    "kernel": "gpu",
    "Kernel": "gpu",
    "gpu_memcpy": "gpu",
    "Memcpy": "gpu",
    "gpu_memset": "gpu",
    "Memset": "gpu",
    "cuda_sync": "gpu",
    "cpu_instant_event": "memory",
}
# normalised `cat` values stored in the tables
CANONICAL_CAT: dict[str, str] = {
    "Operator": "cpu_op",
    "Runtime": "cuda_runtime",
    "Kernel": "kernel",
    "Memcpy": "gpu_memcpy",
    "Memset": "gpu_memset",
}
_EMPTY: dict[str, Any] = {}
_ZERO3 = (0, 0, 0)


class Interner:
    """Strings (or JSON-dumped values) to stable int32 codes across chunks."""

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}

    def encode(self, values: Sequence[Any]) -> np.ndarray:
        """Codes for values: one dict lookup each, new values numbered in order of appearance."""
        codes = self.codes
        for v in dict.fromkeys(values):  # the chunk's distinct values, in C
            if v not in codes:
                codes[v] = len(codes)
        return np.fromiter(map(codes.__getitem__, values), dtype=np.int32, count=len(values))

    def categories(self) -> list[Any]:
        """Every value seen so far, in code order (bytes decoded to str)."""
        return [c.decode() if isinstance(c, bytes) else c for c in self.codes]


def _times_ns(values: Sequence[Any]) -> np.ndarray:
    """Kineto microseconds (int or float) to int64 ns, exact for integer epoch microseconds."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64) * 1000
    arr = arr.astype(np.float64)
    whole = np.floor(arr)
    return whole.astype(np.int64) * 1000 + np.rint((arr - whole) * 1000).astype(np.int64)


_TRAILING_INT = re.compile(r"(-?\d+)\s*$")


def _ints(values: Sequence[Any], missing: int = -1) -> np.ndarray:
    """Integers where they are ints, `missing` where absent or not numbers (e.g. tid 'stream 7')."""
    if not values:
        return np.empty(0, dtype=np.int64)
    fast = np.asarray(values)
    if fast.dtype.kind in "iu":  # the common case: every value an int
        return fast.astype(np.int64)
    # legacy string tids ("stream 7", "25738"): the trailing integer, once per distinct value
    seen: dict[Any, int] = {}
    for v in dict.fromkeys(values):
        seen[v] = _to_int(v, missing)
    return np.fromiter(map(seen.__getitem__, values), dtype=np.int64, count=len(values))


def _to_int(v: Any, missing: int) -> int:
    if isinstance(v, bool) or v is None:
        return missing
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if v == v else missing
    m = _TRAILING_INT.search(str(v))
    return int(m.group(1)) if m else missing


def _floats(values: Sequence[Any]) -> np.ndarray:
    """Floats; NaN for absent (None) values and for anything that is not a number."""
    try:
        return np.asarray(values, dtype=np.float64)  # None becomes NaN
    except (TypeError, ValueError):
        return np.array(
            [
                v if isinstance(v, int | float) and not isinstance(v, bool) else np.nan
                for v in values
            ],
            dtype=np.float64,
        )


def _external_ids(args: list[dict[str, Any]]) -> np.ndarray:
    """args["External id"] (2021 traces: "external id"), -1 when absent."""
    return _ints(
        [v if (v := a.get("External id")) is not None else a.get("external id", -1) for a in args]
    )


_COMMON_KEYS = operator.itemgetter("name", "ts", "dur", "pid", "tid")


class ColumnBuilder:
    """Accumulates per-chunk column arrays for each table; `columns()` concatenates once.

    Needs only numpy and orjson (pandas is only in to_frames()), so a worker process can build
    the columns while its parent imports the analyzers.
    """

    def __init__(self) -> None:
        self.names = Interner()
        self.cats = Interner()
        self.shapes = Interner()  # JSON of "Input Dims" / "Input type", interned
        self.parts: dict[str, list[dict[str, np.ndarray]]] = {
            "cpu": [],
            "runtime": [],
            "gpu": [],
            "memory": [],
        }
        self.events_seen = 0
        # events of categories no table holds (another accelerator's runtime, ...), counted by
        # category: what a trace recorded beyond the CPU and CUDA tables (dsprof.trace.device_kind)
        self.unread_categories: dict[str, int] = {}

    def add(self, events: list[dict[str, Any]]) -> None:
        """Sort one chunk's events into their tables."""
        self.events_seen += len(events)
        groups: dict[str, list[dict[str, Any]]] = {}
        for e in events:
            cat = e.get("cat") or ("memory" if e.get("name") == "[memory]" else "")
            group = groups.get(cat)
            if group is None:
                groups[cat] = [e]
            else:
                group.append(e)
        for cat, group in groups.items():
            kind = "memory" if cat == "memory" else KIND_OF_CAT.get(cat)
            if kind is None:
                if isinstance(cat, str) and cat:
                    self.unread_categories[cat] = self.unread_categories.get(cat, 0) + len(group)
                continue
            if kind == "memory":
                group = [e for e in group if e.get("name") == "[memory]"]
            else:
                group = [e for e in group if e.get("ph") == "X"]
            if group:
                builder = getattr(self, f"_{kind}")
                self.parts[kind].append(builder(group, CANONICAL_CAT.get(cat, cat)))

    def _common(self, group: list[dict[str, Any]], cat: str) -> dict[str, np.ndarray]:
        n = len(group)
        try:  # Kineto writes all five on every complete event: one C-level pass
            name, ts, dur, pid, tid = zip(*map(_COMMON_KEYS, group), strict=True)
        except KeyError:
            name = tuple(e.get("name", "") for e in group)
            ts = tuple(e.get("ts", 0) for e in group)
            dur = tuple(e.get("dur", 0) for e in group)
            pid = tuple(e.get("pid", -1) for e in group)
            tid = tuple(e.get("tid", -1) for e in group)
        return {
            "name": self.names.encode(name),
            "cat": np.full(n, self.cats.encode([cat])[0], dtype=np.int32),
            "ts_ns": _times_ns(ts),
            "dur_ns": _times_ns(dur),
            "pid": _ints(pid),
            "tid": _ints(tid),
        }

    def _cpu(self, group: list[dict[str, Any]], cat: str) -> dict[str, np.ndarray]:
        cols = self._common(group, cat)
        args = [e.get("args") or _EMPTY for e in group]
        cols["external_id"] = _external_ids(args)
        # autograd records a sequence number only for ops it builds a graph for
        cols["seq"] = _ints([a.get("Sequence number", -1) for a in args])
        if cat in ("cpu_op", "user_annotation"):
            # shapes, dtypes, scalar arguments: interned JSON text, decoded per unique value
            cols["input_dims"] = self.shapes.encode([_dump(a.get("Input Dims")) for a in args])
            cols["input_types"] = self.shapes.encode([_dump(a.get("Input type")) for a in args])
            cols["concrete_inputs"] = self.shapes.encode(
                [_dump(a.get("Concrete Inputs")) for a in args]
            )
        else:
            empty = self.shapes.encode([b""])[0]
            cols["input_dims"] = np.full(len(group), empty, dtype=np.int32)
            cols["input_types"] = cols["input_dims"].copy()
            cols["concrete_inputs"] = cols["input_dims"].copy()
        return cols

    def _runtime(self, group: list[dict[str, Any]], cat: str) -> dict[str, np.ndarray]:
        cols = self._common(group, cat)
        args = [e.get("args") or _EMPTY for e in group]
        cols["correlation"] = _ints([a.get("correlation", -1) for a in args])
        cols["external_id"] = _external_ids(args)
        return cols

    def _gpu(self, group: list[dict[str, Any]], cat: str) -> dict[str, np.ndarray]:
        cols = self._common(group, cat)
        args = [e.get("args") or _EMPTY for e in group]
        cols["device"] = _ints([a.get("device", -1) for a in args])
        cols["stream"] = _ints([a.get("stream", -1) for a in args])
        cols["correlation"] = _ints([a.get("correlation", -1) for a in args])
        cols["external_id"] = _external_ids(args)
        cols["bytes"] = _ints([a.get("bytes", -1) for a in args])
        if cat == "kernel":
            grid = np.asarray([_xyz(a.get("grid")) for a in args], dtype=np.int64).reshape(-1, 3)
            block = np.asarray([_xyz(a.get("block")) for a in args], dtype=np.int64).reshape(-1, 3)
            cols["grid_blocks"] = np.where(grid.min(axis=1) > 0, grid.prod(axis=1), -1)
            cols["block_threads"] = np.where(block.min(axis=1) > 0, block.prod(axis=1), -1)
            cols["registers"] = _ints([a.get("registers per thread", -1) for a in args])
            cols["shared_mem_bytes"] = _ints([a.get("shared memory", -1) for a in args])
            cols["blocks_per_sm"] = _floats([a.get("blocks per SM") for a in args])
            cols["warps_per_sm"] = _floats([a.get("warps per SM") for a in args])
            cols["occupancy_pct"] = _floats([a.get("est. achieved occupancy %") for a in args])
        return cols

    def _memory(self, group: list[dict[str, Any]], cat: str) -> dict[str, np.ndarray]:
        cols = self._common(group, "memory")
        args = [e.get("args") or _EMPTY for e in group]
        cols["bytes"] = _ints([a.get("Bytes", 0) for a in args], missing=0)
        cols["total_allocated"] = _ints([a.get("Total Allocated", -1) for a in args])
        cols["total_reserved"] = _ints([a.get("Total Reserved", -1) for a in args])
        cols["device_id"] = _ints([a.get("Device Id", -1) for a in args])
        cols["device_type"] = _ints([a.get("Device Type", -1) for a in args])
        return cols

    def columns(self) -> dict[str, dict[str, np.ndarray]]:
        """Each table's columns, its chunks concatenated (codes index the interners' values)."""
        return {kind: _concat(parts, _SCHEMA[kind]) for kind, parts in self.parts.items()}


def to_frames(
    tables: dict[str, dict[str, np.ndarray]],
    strings: dict[str, list[Any]],
    base_ns: int,
) -> dict[str, pd.DataFrame]:
    """One DataFrame per table, times shifted onto the epoch clock, sorted by start time.

    strings: the values behind the codes, by interner ("names", "cats", "shapes").
    """
    import pandas as pd

    def categorical(codes: np.ndarray, values: list[Any]) -> pd.Categorical:
        return pd.Categorical.from_codes(
            codes, categories=pd.Index(values, dtype=object), validate=False
        )

    out = {}
    for kind, columns in tables.items():
        df = pd.DataFrame(columns)
        df["name"] = categorical(columns["name"], strings["names"])
        df["cat"] = categorical(columns["cat"], strings["cats"]).remove_unused_categories()
        if "input_dims" in df:
            for col in ("input_dims", "input_types", "concrete_inputs"):
                df[col] = categorical(columns[col], strings["shapes"])
        df["ts_ns"] += base_ns
        df.insert(df.columns.get_loc("dur_ns") + 1, "end_ns", df["ts_ns"] + df["dur_ns"])
        out[kind] = df.sort_values("ts_ns", kind="stable", ignore_index=True)
    return out


_CODED = ("name", "cat", "input_dims", "input_types", "concrete_inputs")
_COMMON = ("name", "cat", "ts_ns", "dur_ns", "pid", "tid")
_KERNEL_ONLY = {
    "grid_blocks": -1,
    "block_threads": -1,
    "registers": -1,
    "shared_mem_bytes": -1,
    "blocks_per_sm": np.nan,
    "warps_per_sm": np.nan,
    "occupancy_pct": np.nan,
}
_SCHEMA: dict[str, tuple[str, ...]] = {
    "cpu": (*_COMMON, "external_id", "seq", "input_dims", "input_types", "concrete_inputs"),
    "runtime": (*_COMMON, "correlation", "external_id"),
    "gpu": (*_COMMON, "device", "stream", "correlation", "external_id", "bytes", *_KERNEL_ONLY),
    "memory": (*_COMMON, "bytes", "total_allocated", "total_reserved", "device_id", "device_type"),
}


def _concat(parts: list[dict[str, np.ndarray]], schema: tuple[str, ...]) -> dict[str, np.ndarray]:
    out = {}
    for col in schema:
        pieces = []
        for p in parts:
            if col in p:
                pieces.append(p[col])
            else:  # kernel-only columns on memcpy/memset chunks
                fill = _KERNEL_ONLY.get(col, -1)
                n = len(p["ts_ns"])
                pieces.append(np.full(n, fill, dtype=np.float64 if fill is np.nan else np.int64))
        if pieces:
            out[col] = np.concatenate(pieces)
        else:
            dtype = np.int32 if col in _CODED else np.int64
            out[col] = np.empty(
                0, dtype=np.float64 if _KERNEL_ONLY.get(col, -1) is np.nan else dtype
            )
    return out


def _xyz(v: Any) -> Any:
    return v if isinstance(v, list) and len(v) == 3 else _ZERO3


def _dump(v: Any) -> bytes:
    return orjson.dumps(v) if v else b""
