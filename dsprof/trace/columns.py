"""Turn chunks of Kineto events (dsprof.trace.events.Event) into typed columns, one table per kind.

Category names of both schemas map onto one vocabulary (KIND_OF_CAT). Per chunk, events are grouped
by category and only the fields a kind needs are pulled out into numpy columns. Strings are
interned into int32 codes shared across chunks (Interner), so a name repeated a million times is
stored once. Flows, metadata ('M') and profiler spans are dropped here. Only numpy and orjson are
needed up to ColumnBuilder.columns(); to_frames() makes the pandas tables.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import orjson

from dsprof.trace.events import Args, Event, OversizedArgs

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
_EMPTY = Args()
_UNSET = msgspec.UNSET
_ZERO3 = (0, 0, 0)
_LAUNCH_LIMIT = 1 << 31  # CUDA's largest grid dimension


# Why a row cannot be used: bits of each table's "invalid" column, set where a field the engine
# reads is missing or has a type it cannot be stored as. dsprof.trace.validate drops those rows
# (and checks ranges), and explains each bit in its notice (INVALID_WHY).
BAD_NAME = 1 << 0  # name is not a string (or is over MAX_NAME_CHARS)
BAD_TS = 1 << 1  # ts is missing, not a number, or beyond any clock (TIME_LIMIT_US)
BAD_DUR = 1 << 2  # dur (complete events) is missing, not a number, or beyond TIME_LIMIT_US
BAD_THREAD = 1 << 3  # pid or tid is not an integer (nor a name ending in one)
BAD_ARGS = 1 << 4  # args is not an object
BIG_ARGS = 1 << 5  # args over dsprof.trace.reader.HUGE_EVENT_BYTES (not decoded)
BAD_IDS = 1 << 6  # External id, correlation or Sequence number is not an integer
BAD_PLACE = 1 << 7  # device or stream is not an integer
BAD_BYTES = 1 << 8  # bytes or a memory counter is not an integer
BAD_LAUNCH = 1 << 9  # grid, block, registers, shared memory, occupancy are not numbers
BAD_SHAPES = 1 << 10  # Input Dims / Input type / Concrete Inputs malformed or over MAX_SHAPES_BYTES
INT64_MAX = (1 << 63) - 1
# |ts| and dur in microseconds: 2^62 ns (146 years), so that ts + dur + baseTimeNanoseconds fit
TIME_LIMIT_US = (1 << 62) // 1000
MAX_NAME_CHARS = 1 << 20
MAX_SHAPES_BYTES = 1 << 20


class Interner:
    """Strings (or JSON-dumped values) to stable int32 codes across chunks.

    A value that is not a string (None, a number, a list) gets code BAD_CODE from
    encode_strings(), and its rows are marked invalid by the caller.
    """

    BAD_CODE = -1

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}

    def encode(self, values: Sequence[Any]) -> np.ndarray:
        """Codes for hashable values: one dict lookup each, new values numbered in order."""
        codes = self.codes
        for v in dict.fromkeys(values):  # the chunk's distinct values, in C
            if v not in codes:
                codes[v] = len(codes)
        return np.fromiter(map(codes.__getitem__, values), dtype=np.int32, count=len(values))

    def encode_strings(self, values: Sequence[Any]) -> np.ndarray:
        """Codes for values that must be strings (names); BAD_CODE for anything else."""
        codes = self.codes
        try:
            distinct = dict.fromkeys(values)
        except TypeError:  # a list or an object among them
            values = [v if type(v) is str else None for v in values]
            distinct = dict.fromkeys(values)
        bad = False
        for v in distinct:
            if v not in codes:
                if type(v) is str and len(v) <= MAX_NAME_CHARS:
                    codes[v] = len(codes)
                else:
                    bad = True
        if not bad:
            return np.fromiter(map(codes.__getitem__, values), dtype=np.int32, count=len(values))
        get = codes.get
        return np.fromiter(
            (get(v, -1) if type(v) is str else -1 for v in values),
            dtype=np.int32,
            count=len(values),
        )

    def categories(self) -> list[Any]:
        """Every value seen so far, in code order (bytes decoded to str)."""
        return [c.decode() if isinstance(c, bytes) else c for c in self.codes]


def _numbers(values: Sequence[Any]) -> np.ndarray | None:
    """values as a 1-d int64 or float64 array when every one is a plain number, else None
    (numpy's own inference: one C pass; a bool counts as the integer it is in Python)."""
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        return None
    return arr if arr.ndim == 1 and arr.dtype.kind in "if" else None


def _times_ns(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """Kineto microseconds (int or float) to int64 ns, exact for integer epoch microseconds;
    and the mask of values that are not finite numbers within TIME_LIMIT_US (None: all are)."""
    arr = _numbers(values)
    if arr is not None and arr.dtype.kind == "i":
        if not len(arr) or (arr.min() > -TIME_LIMIT_US and arr.max() < TIME_LIMIT_US):
            return arr * 1000, None
        bad = np.abs(arr) >= TIME_LIMIT_US
        return np.where(bad, 0, arr) * 1000, bad
    if arr is None:  # a string, a list, None or a huge integer among them: one by one
        arr = np.array(
            [v if type(v) in (int, float) and abs(v) < TIME_LIMIT_US else np.nan for v in values],
            dtype=np.float64,
        )
    bad = ~(np.abs(arr) < TIME_LIMIT_US)  # NaN too
    any_bad = bool(bad.any())
    if any_bad:
        arr = np.where(bad, 0.0, arr)
    whole = np.floor(arr)
    ns = whole.astype(np.int64) * 1000 + np.rint((arr - whole) * 1000).astype(np.int64)
    return ns, bad if any_bad else None


_TRAILING_INT = re.compile(r"(-?\d+)\s*$")


def _ints(values: Sequence[Any], missing: int = -1) -> tuple[np.ndarray, np.ndarray | None]:
    """(int64 values, invalid mask or None): ints as they are; `missing` for None (absent) and
    for strings with no trailing integer; invalid for lists, objects, bools, non-integral or
    non-finite floats and integers beyond int64. Legacy string ids ("stream 7") give 7."""
    fast = _numbers(values)
    if fast is not None and fast.dtype.kind == "i":  # the common case: every value an int
        return fast, None
    if fast is None and None in values:  # an arg some events lack: ints and None
        fast = _numbers([missing if v is None else v for v in values])
        if fast is not None and fast.dtype.kind == "i":
            return fast, None
    seen: dict[Any, int | None] = {}
    out = np.empty(len(values), dtype=np.int64)
    bad = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        key = v if type(v) in (int, float, str) or v is None else id(v)
        n = seen[key] if key in seen else seen.setdefault(key, _to_int(v, missing))
        if n is None:
            bad[i] = True
            out[i] = missing
        else:
            out[i] = n
    return out, bad if bad.any() else None


def _to_int(v: Any, missing: int) -> int | None:
    """v as an int; missing when absent or a name with no number; None when it cannot be one."""
    if v is None:
        return missing
    t = type(v)
    if t is int:
        return v if -INT64_MAX <= v <= INT64_MAX else None
    if t is float:
        return int(v) if v.is_integer() and abs(v) <= INT64_MAX else None
    if t is str:
        m = _TRAILING_INT.search(v)
        return _to_int(int(m.group(1)), missing) if m else missing
    return None  # bool, list, dict


def _floats(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """(float64 values, invalid mask or None): NaN for absent (None); invalid for non-numbers."""
    arr = _numbers(values)
    if arr is not None:
        return arr.astype(np.float64), None
    if values.count(None) == len(values):  # the field is not recorded (2021 traces)
        return np.full(len(values), np.nan), None
    out = np.array([v if type(v) in (int, float) else np.nan for v in values], dtype=np.float64)
    bad = np.fromiter((v is not None and type(v) not in (int, float) for v in values), bool)
    return out, bad


def _external_ids(args: list[Args]) -> tuple[np.ndarray, np.ndarray | None]:
    """args["External id"] (2021 traces: "external id"), -1 when absent."""
    return _ints([v if (v := a.external_id) is not None else a.external_id_2021 for a in args])


_COMMON_FIELDS = tuple(map(attrgetter, ("name", "ts", "dur", "pid", "tid")))
_ARGS = attrgetter("args")
_NAME = attrgetter("name")
_PH = attrgetter("ph")


class ColumnBuilder:
    """Accumulates per-chunk column arrays for each table; `columns()` concatenates once.

    Needs only numpy and orjson (pandas is only in to_frames()), so a worker process can build
    the columns while its parent imports the analyzers. Nothing here raises on a value of the
    wrong type: the row's "invalid" bits say which field could not be stored.
    """

    def __init__(self) -> None:
        self.names = Interner()
        self.cats = Interner()
        # raw JSON text of "Input Dims" / "Input type" / "Concrete Inputs" as the file writes
        # it, interned; columns() maps each distinct text to its canonical form (self.shapes)
        self.raw_shapes = Interner()
        self.shapes = Interner()
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
        self.bad_cat = 0  # events whose cat is not a string (of no table: dropped here)

    def add(self, events: list[Event]) -> None:
        """Sort one chunk's events into their tables."""
        self.events_seen += len(events)
        groups: dict[str, list[Event]] = {}
        for e in events:
            cat = e.cat or ("memory" if e.name == "[memory]" else "")
            if type(cat) is not str:
                self.bad_cat += 1
                continue
            group = groups.get(cat)
            if group is None:
                groups[cat] = [e]
            else:
                group.append(e)
        for cat, group in groups.items():
            kind = "memory" if cat == "memory" else KIND_OF_CAT.get(cat)
            if kind is None:
                if cat:
                    self.unread_categories[cat] = self.unread_categories.get(cat, 0) + len(group)
                continue
            # the rows of the table: [memory] instants, complete events ("X") of the others
            if kind == "memory":
                if list(map(_NAME, group)).count("[memory]") != len(group):
                    group = [e for e in group if e.name == "[memory]"]
            elif list(map(_PH, group)).count("X") != len(group):
                group = [e for e in group if e.ph == "X"]
            if group:
                builder = getattr(self, f"_{kind}")
                self.parts[kind].append(builder(group, CANONICAL_CAT.get(cat, cat)))

    def _common(
        self, group: list[Event], cat: str, *, needs_dur: bool = True
    ) -> tuple[dict[str, np.ndarray], list[Args]]:
        """The columns every table has, and each event's args (empty Args when absent)."""
        n = len(group)
        name, ts, dur, pid, tid = (list(map(get, group)) for get in _COMMON_FIELDS)
        if _UNSET in dur:  # no dur: invalid, except on instants ([memory] events), 0 there
            absent = None if needs_dur else 0
            dur = [absent if d is _UNSET else d for d in dur]
        names = self.names.encode_strings(name)
        ts_ns, bad_ts = _times_ns(ts)
        dur_ns, bad_dur = _times_ns(dur)
        pids, bad_pid = _ints(pid)
        tids, bad_tid = _ints(tid)
        invalid = np.zeros(n, dtype=np.uint32)
        for bad, bit in (
            (names < 0, BAD_NAME),
            (bad_ts, BAD_TS),
            (bad_dur, BAD_DUR),
            (bad_pid, BAD_THREAD),
            (bad_tid, BAD_THREAD),
        ):
            if bad is not None and bad.any():
                invalid[bad] |= bit
        args = list(map(_ARGS, group))
        if None in args:
            args = [a or _EMPTY for a in args]
        if set(map(type, args)) != {Args}:  # an args that is not an object: read as empty
            for i, a in enumerate(args):
                if type(a) is not Args:
                    invalid[i] |= BIG_ARGS if isinstance(a, OversizedArgs) else BAD_ARGS
                    args[i] = _EMPTY
        cols = {
            "name": np.maximum(names, 0),
            "cat": np.full(n, self.cats.encode([cat])[0], dtype=np.int32),
            "ts_ns": ts_ns,
            "dur_ns": dur_ns,
            "pid": pids,
            "tid": tids,
            "invalid": invalid,
        }
        return cols, args

    def _int_args(
        self,
        cols: dict[str, np.ndarray],
        args: list[Args],
        fields: dict[str, tuple[str, int, int]],
    ) -> None:
        """cols[column] = the Args field as ints (default when absent); bad values set the bit."""
        for column, (field, default, bit) in fields.items():
            values, bad = _ints(list(map(attrgetter(field), args)), missing=default)
            cols[column] = values
            if bad is not None:
                cols["invalid"][bad] |= bit

    def _ids(self, cols: dict[str, np.ndarray], args: list[Args]) -> None:
        values, bad = _external_ids(args)
        cols["external_id"] = values
        if bad is not None:
            cols["invalid"][bad] |= BAD_IDS

    def _cpu(self, group: list[Event], cat: str) -> dict[str, np.ndarray]:
        cols, args = self._common(group, cat)
        self._ids(cols, args)
        # autograd records a sequence number only for ops it builds a graph for
        self._int_args(cols, args, {"seq": ("seq", -1, BAD_IDS)})
        if cat in ("cpu_op", "user_annotation"):
            # shapes, dtypes, scalar arguments: the raw JSON text interned here, made canonical
            # once per distinct text in columns() (their size and form are checked in validate)
            for column in _SHAPE_ARGS:
                raw = attrgetter(column)
                cols[column] = self.raw_shapes.encode(list(map(bytes, map(raw, args))))
        else:
            empty = self.raw_shapes.encode([b""])[0]
            for column in _SHAPE_ARGS:
                cols[column] = np.full(len(group), empty, dtype=np.int32)
        return cols

    def _runtime(self, group: list[Event], cat: str) -> dict[str, np.ndarray]:
        cols, args = self._common(group, cat)
        self._int_args(cols, args, {"correlation": ("correlation", -1, BAD_IDS)})
        self._ids(cols, args)
        return cols

    def _gpu(self, group: list[Event], cat: str) -> dict[str, np.ndarray]:
        cols, args = self._common(group, cat)
        self._int_args(
            cols,
            args,
            {
                "device": ("device", -1, BAD_PLACE),
                "stream": ("stream", -1, BAD_PLACE),
                "correlation": ("correlation", -1, BAD_IDS),
            },
        )
        self._ids(cols, args)
        self._int_args(cols, args, {"bytes": ("bytes", -1, BAD_BYTES)})
        if cat == "kernel":
            grid, bad_grid = _xyz([a.grid for a in args])
            block, bad_block = _xyz([a.block for a in args])
            cols["grid_blocks"] = grid
            cols["block_threads"] = block
            if bad_grid.any() or bad_block.any():
                cols["invalid"][bad_grid | bad_block] |= BAD_LAUNCH
            self._int_args(
                cols,
                args,
                {
                    "registers": ("registers", -1, BAD_LAUNCH),
                    "shared_mem_bytes": ("shared_memory", -1, BAD_LAUNCH),
                },
            )
            for column in _KERNEL_FLOATS:
                values, bad = _floats(list(map(attrgetter(column), args)))
                cols[column] = values
                if bad is not None:
                    cols["invalid"][bad] |= BAD_LAUNCH
        return cols

    def _memory(self, group: list[Event], cat: str) -> dict[str, np.ndarray]:
        cols, args = self._common(group, "memory", needs_dur=False)
        self._int_args(
            cols,
            args,
            {
                "bytes": ("memory_bytes", 0, BAD_BYTES),
                "total_allocated": ("total_allocated", -1, BAD_BYTES),
                "total_reserved": ("total_reserved", -1, BAD_BYTES),
                "device_id": ("device_id", -1, BAD_PLACE),
                "device_type": ("device_type", -1, BAD_PLACE),
            },
        )
        return cols

    def columns(self) -> dict[str, dict[str, np.ndarray]]:
        """Each table's columns, its chunks concatenated (codes index the interners' values;
        the shape columns self.shapes', filled here)."""
        tables = {kind: _concat(parts, _SCHEMA[kind]) for kind, parts in self.parts.items()}
        canonical = self.shapes.encode([_canonical(raw) for raw in self.raw_shapes.codes])
        for column in _SHAPE_ARGS:
            tables["cpu"][column] = canonical[tables["cpu"][column]]
        return tables


# the columns that hold an arg's JSON text, and the floats of kernels (the Args fields' names)
_SHAPE_ARGS = ("input_dims", "input_types", "concrete_inputs")
_KERNEL_FLOATS = ("blocks_per_sm", "warps_per_sm", "occupancy_pct")


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
        df = pd.DataFrame({k: v for k, v in columns.items() if k != "invalid"})
        df["name"] = categorical(columns["name"], strings["names"])
        df["cat"] = categorical(columns["cat"], strings["cats"]).remove_unused_categories()
        if "input_dims" in df:
            for col in ("input_dims", "input_types", "concrete_inputs"):
                df[col] = categorical(columns[col], strings["shapes"])
        df["ts_ns"] += base_ns
        df.insert(df.columns.get_loc("dur_ns") + 1, "end_ns", df["ts_ns"] + df["dur_ns"])
        df = df.sort_values("ts_ns", kind="stable", ignore_index=True)
        # column labels as plain objects: with pandas' Arrow string labels every later
        # assign() of a view column rebuilds the label index (~1 ms each)
        df.columns = pd.Index(list(df.columns), dtype=object)
        out[kind] = df
    return out


_CODED = ("name", "cat", "input_dims", "input_types", "concrete_inputs")
_COMMON = ("name", "cat", "ts_ns", "dur_ns", "pid", "tid", "invalid")
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


def _xyz(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(product of each [x, y, z] launch dimension, invalid mask): -1 when absent or not all
    positive (Kineto writes [0, 0, 0] for copies); invalid unless three integers in 0..2^31."""
    n = len(values)
    rows = [v if type(v) is list and len(v) == 3 else _ZERO3 for v in values]
    bad = np.zeros(n, dtype=bool)
    if rows.count(_ZERO3):  # absent, or not a list of three: which?
        bad[[i for i, v in enumerate(values) if v is not None and rows[i] is _ZERO3]] = True
    try:
        dims = np.asarray(rows) if n else np.zeros((0, 3), dtype=np.int64)
    except (ValueError, TypeError, OverflowError):
        dims = None
    if dims is None or dims.ndim != 2 or dims.dtype.kind != "i":  # strings, floats, huge ints
        ok = [all(type(x) is int and 0 <= x < _LAUNCH_LIMIT for x in r) for r in rows]
        bad |= ~np.asarray(ok, dtype=bool)
        dims = np.asarray([r if k else _ZERO3 for r, k in zip(rows, ok, strict=True)], np.int64)
    elif len(dims) and (dims.min() < 0 or dims.max() >= _LAUNCH_LIMIT):
        bad |= ((dims < 0) | (dims >= _LAUNCH_LIMIT)).any(axis=1)
        dims = np.where(bad[:, None], 0, dims)
    return np.where(dims.min(axis=1) > 0, dims.prod(axis=1), -1), bad


def _canonical(raw: bytes) -> bytes:
    """An arg's JSON text as the tables hold it: compact, b"" for an absent or empty value
    (null, [], "", 0); raw as it is where it cannot be decoded (validate marks it)."""
    if not raw:
        return b""
    try:
        v = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    return orjson.dumps(v) if v else b""
