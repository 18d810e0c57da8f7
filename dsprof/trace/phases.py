"""One-time initialisation in a trace, and the steady state after it.

A process pays once for the CUDA/HIP context, module and library loading, cuDNN/MIOpen algorithm
search and workspace allocation on the first call of each op and shape, and the caching
allocator's first reservations. A trace with ProfilerStep spans usually starts after that; a
trace without them (a benchmark recorded from its first line) can be almost all initialisation:
averaging over both would blame the steady state for a cost it never pays again.

One-time work (`init_intervals`) is:
    - runtime calls of the "init" family (dsprof.trace.calls: context and stream creation,
      module and library loading);
    - the first call of a runtime call name that takes at least FIRST_CALL_MIN_NS and at least
      FIRST_CALL_RATIO times the median of its later calls (the first cudaLaunchKernel loads
      the module, the first cudaFree creates the context...); a name called once counts when
      it is no launch, copy, sync or allocator call (queries such as
      cudaDeviceGetStreamPriorityRange create the context on first use);
    - the first call of an operator with given input shapes that takes FIRST_CALL_MIN_NS and
      FIRST_CALL_RATIO times its later calls with the same shapes (cuDNN/MIOpen algorithm
      search, first workspace allocation), unless the host spent most of it blocked in syncs
      (the first .item() waits for the GPU like any other).
Syncs and copies never count as one-time work: their length is the device's, not the host's.

The initialisation phase (`InitPhase.cut_ns`) is the longest prefix of the trace that is at
least INIT_DENSITY one-time work; it is cut from a trace without ProfilerStep spans when it is
at least INIT_MIN_SHARE of the trace and device work (or CPU ops, on a CPU trace) follows it.
Thresholds: FIRST_CALL_MIN_NS 1 ms (launch, allocation and sync calls take microseconds in the
steady state; a first call a thousand times longer is set-up), FIRST_CALL_RATIO 10 (an order
of magnitude: run-to-run jitter of the same call stays well inside it), INIT_DENSITY 50 % (the
prefix is mostly set-up), INIT_MIN_SHARE 5 % (less changes no share by more than rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dsprof.trace.intervals import covered_ns_each, union_intervals

if TYPE_CHECKING:
    from dsprof.trace.frames import TraceFrames

FIRST_CALL_MIN_NS = 1_000_000
FIRST_CALL_RATIO = 10.0
INIT_DENSITY = 0.5
INIT_MIN_SHARE = 0.05
# runtime families whose length is the device's or the data's, never one-time host work
_NOT_INIT_FAMILIES = ("explicit-sync", "implicit-sync", "copy")
_SINGLETON_FAMILIES = ("", "init")
_SYNC_OPS = frozenset({"aten::item", "aten::_local_scalar_dense", "aten::is_nonzero"})


@dataclass(frozen=True)
class InitPhase:
    """One-time work in a trace: its intervals, what it was, and the prefix it makes up."""

    starts: np.ndarray  # union of one-time work intervals (ns), sorted, disjoint
    ends: np.ndarray
    trace_start_ns: int
    trace_end_ns: int
    cut_ns: int | None  # end of the initialisation prefix when it is cut, else None
    top: tuple[tuple[str, int, str], ...]  # (what, ns, longest call inside it)

    @property
    def total_ns(self) -> int:
        """Length of all one-time work."""
        return int((self.ends - self.starts).sum())

    @property
    def prefix_ns(self) -> int:
        """Length of the cut prefix (0 when nothing is cut)."""
        return 0 if self.cut_ns is None else self.cut_ns - self.trace_start_ns

    def describe(self, limit: int = 3) -> str:
        """'aten::to (first call) 29938 ms in cudaDeviceGetStreamPriorityRange, ...'."""
        return ", ".join(
            f"{what} {ns / 1e6:.0f} ms" + (f" in {inner}" if inner else "")
            for what, ns, inner in self.top[:limit]
        )


def trace_bounds(tf: TraceFrames) -> tuple[int, int]:
    """First start and last end over the host and device tables (the [memory] events of a
    trace that holds nothing else; (0, 0) for none)."""
    tables = [df for df in (tf.cpu, tf.runtime, tf.gpu) if len(df)] or [tf.memory]
    if not any(len(df) for df in tables):
        return 0, 0
    return int(min(df["ts_ns"].min() for df in tables)), int(
        max(df["end_ns"].max() for df in tables)
    )


def init_phase(tf: TraceFrames, has_steps: bool) -> InitPhase:
    """One-time work of the trace and, when it has no ProfilerStep spans, the prefix to cut."""
    lo, hi = trace_bounds(tf)
    parts = [_init_calls(tf), _first_runtime_calls(tf), _first_op_calls(tf)]
    found = (
        pd.concat([p for p in parts if len(p)], ignore_index=True)
        if any(len(p) for p in parts)
        else pd.DataFrame({"what": [], "ts_ns": [], "end_ns": []})
    )
    starts, ends = union_intervals(
        found["ts_ns"].to_numpy(dtype=np.int64), found["end_ns"].to_numpy(dtype=np.int64)
    )
    top = _longest(found, tf)
    cut = None if has_steps else _prefix_end(tf, starts, ends, lo, hi)
    return InitPhase(starts, ends, lo, hi, cut, top)


def _init_calls(tf: TraceFrames) -> pd.DataFrame:
    rt = tf.runtime_calls
    hit = rt[rt["family"] == "init"]
    return pd.DataFrame(
        {"what": hit["name"].astype(str).to_numpy(), "ts_ns": hit["ts_ns"], "end_ns": hit["end_ns"]}
    )


def _first_runtime_calls(tf: TraceFrames) -> pd.DataFrame:
    rt = tf.runtime_calls
    rt = rt[~rt["family"].isin(_NOT_INIT_FAMILIES)]
    return _outlying_first_calls(rt, rt["name"].cat.codes.to_numpy(), singletons=True)


def _first_op_calls(tf: TraceFrames) -> pd.DataFrame:
    ops = tf.cpu_ops
    if not len(ops):
        return pd.DataFrame()
    # same op with the same input shapes (or the same op, where shapes were not recorded)
    key = (
        ops["name"].cat.codes.to_numpy().astype(np.int64) << 32
        | ops["input_dims"].cat.codes.to_numpy().astype(np.int64) & 0xFFFFFFFF
    )
    first = _outlying_first_calls(ops, key, singletons=False)
    if not len(first):
        return first
    first = first[~first["what"].isin(_SYNC_OPS)]
    syncs = tf.host_syncs
    blocked = covered_ns_each(
        first["ts_ns"].to_numpy(), first["end_ns"].to_numpy(),
        syncs["ts_ns"].to_numpy(), syncs["end_ns"].to_numpy(),
    )  # fmt: skip
    length = (first["end_ns"] - first["ts_ns"]).to_numpy()
    return first[blocked * 2 < length].reset_index(drop=True)


def _outlying_first_calls(df: pd.DataFrame, key: np.ndarray, singletons: bool) -> pd.DataFrame:
    """The first call of each key when it is FIRST_CALL_RATIO times its later calls' median."""
    if not len(df):
        return pd.DataFrame()
    dur = df["dur_ns"].to_numpy()
    order = np.argsort(df["ts_ns"].to_numpy(), kind="stable")
    k = key[order]
    _, first_pos = np.unique(k, return_index=True)
    first_rows = order[first_pos]
    candidates = first_rows[dur[first_rows] >= FIRST_CALL_MIN_NS]
    if not len(candidates):
        return pd.DataFrame()
    # the typical (median) later call, only for the keys whose first call is a candidate
    later = np.isin(key, key[candidates])
    later[first_rows] = False
    medians = pd.Series(dur[later]).groupby(key[later]).median()
    typical = medians.reindex(key[candidates]).to_numpy()
    if singletons and "family" in df:
        alone_ok = df["family"].isin(_SINGLETON_FAMILIES).to_numpy()[candidates]
    else:
        alone_ok = np.zeros(len(candidates), dtype=bool)
    keep = np.where(
        np.isnan(typical), alone_ok, dur[candidates] >= FIRST_CALL_RATIO * np.nan_to_num(typical)
    )
    rows = candidates[keep]
    return pd.DataFrame(
        {
            "what": [f"{n} (first call)" for n in df["name"].iloc[rows]],
            "ts_ns": df["ts_ns"].to_numpy()[rows],
            "end_ns": df["end_ns"].to_numpy()[rows],
        }
    )


def _longest(
    found: pd.DataFrame, tf: TraceFrames, limit: int = 5
) -> tuple[tuple[str, int, str], ...]:
    """The longest one-time calls, outermost first (a first conv2d, not the cudaFree inside
    it), each with the longest runtime call inside it (what the time was really spent in)."""
    if not len(found):
        return ()
    found = found.assign(dur=found["end_ns"] - found["ts_ns"]).sort_values(
        ["ts_ns", "dur"], ascending=[True, False]
    )
    reach = np.maximum.accumulate(found["end_ns"].to_numpy())
    nested = np.zeros(len(found), dtype=bool)
    nested[1:] = found["end_ns"].to_numpy()[1:] <= reach[:-1]
    top = found[~nested].nlargest(limit, "dur")
    rt = tf.runtime
    out = []
    for what, start, end, dur in zip(
        top["what"], top["ts_ns"], top["end_ns"], top["dur"], strict=True
    ):
        inside = rt[(rt["ts_ns"] >= start) & (rt["end_ns"] <= end)]
        inner = ""
        if len(inside):
            longest = inside.loc[inside["dur_ns"].idxmax()]
            name = str(longest["name"])
            if not str(what).startswith(name) and longest["dur_ns"] * 2 >= dur:
                inner = f"{name} {longest['dur_ns'] / 1e6:.0f} ms"
        out.append((str(what), int(dur), inner))
    return tuple(out)


def _prefix_end(
    tf: TraceFrames, starts: np.ndarray, ends: np.ndarray, lo: int, hi: int
) -> int | None:
    """End of the longest prefix that is at least INIT_DENSITY one-time work, when worth cutting."""
    if not len(starts) or hi <= lo:
        return None
    covered = np.cumsum(ends - starts)
    density = covered / np.maximum(ends - lo, 1)
    ok = np.flatnonzero(density >= INIT_DENSITY)
    if not len(ok):
        return None
    cut = int(ends[ok[-1]])
    if (cut - lo) < INIT_MIN_SHARE * (hi - lo):
        return None
    # something must follow to judge: device work on a device trace, ops on a CPU trace
    after = tf.gpu_busy_events if len(tf.gpu_busy_events) else tf.cpu_ops
    if not (after["end_ns"] > cut).any():
        return None
    return cut
