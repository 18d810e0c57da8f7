"""What the host was doing while the GPU sat idle: host time under each gap, split by cause.

    tf.idle -> GapCauses | None     the busiest device's idle gaps in the window, with causes

Each nanosecond of a GPU-idle gap is given to the first of these whose host events cover it
(events of every host thread count; nested events are covered by their outermost class):

    unrecorded   a blocking call (>= UNRECORDED_MIN_NS) while no recorded device work runs
                 (under UNRECORDED_COVER of it): a sync only blocks while the device works, so
                 it waits for work the trace does not hold (launched before the profiler
                 started, or by another thread or process); the device was not known to be idle
    init         one-time initialisation (dsprof.trace.phases: context, module and library
                 set-up, first calls far longer than the later ones)
    data loading `enumerate(DataLoader)` fetches
    collective   host-side collectives (nccl:*, gloo:*, c10d::*, record_param_comms): the host
                 waits on other ranks
    allocator    cudaMalloc/cudaFree, hipMalloc/hipFree and friends (a free synchronises the
                 device; without the caching allocator every workspace is one)
    sync         blocking syncs and copies (TraceFrames.host_syncs) and item()/is_nonzero
    launch       kernel/graph launches and the ops that issued them (dispatch), and anything
                 else inside a gap shorter than SHORT_GAP_NS (Python between two launches is
                 the model's own overhead)
    cpu ops      top-level CPU ops that launched no GPU work (pre/post-processing on CPU
                 tensors, a CPU optimizer)
    python       no recorded op at all: Python (decoding, image processing in numpy, ...) or
                 threads the profiler did not see

The order puts the context before what happens inside it: a DataLoader fetch that allocates
pinned memory is data loading; a collective that synchronises is a collective.
SHORT_GAP_NS = 100 us is HTA's `launch_delay_cutoff` (get_cuda_kernel_launch_stats): host
pauses under it are launch latency, not work of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dsprof.trace.intervals import (
    covered_ns_each,
    gaps,
    innermost_containing,
    outermost,
    union_intervals,
)

if TYPE_CHECKING:
    from dsprof.trace.frames import TraceFrames

SHORT_GAP_NS = 100_000
# a stream/device sync on an idle device returns in microseconds
UNRECORDED_MIN_NS = 1_000_000
UNRECORDED_COVER = 0.05
_DATALOADER_PREFIX = "enumerate(DataLoader)"
CAUSES = (
    "unrecorded",
    "init",
    "data loading",
    "collective",
    "allocator",
    "sync",
    "launch",
    "cpu ops",
    "python",
)
CAUSE_LABELS = {
    "unrecorded": "waiting for device work the trace does not show",
    "init": "one-time initialisation",
    "data loading": "data loading (DataLoader)",
    "collective": "waiting on collectives",
    "allocator": "allocator calls",
    "sync": "blocking syncs and copies",
    "launch": "kernel launches and op dispatch",
    "cpu ops": "CPU ops that run no GPU work",
    "python": "host time outside any recorded op (Python)",
}
SYNC_OPS = frozenset({"aten::item", "aten::_local_scalar_dense", "aten::is_nonzero"})


@dataclass(frozen=True)
class HostEvents:
    """Host events of one cause: intervals, and their names (for 'which calls') as categorical
    parts, turned into strings only for the few events a finding names."""

    starts: np.ndarray
    ends: np.ndarray
    name_parts: tuple[pd.Series | np.ndarray, ...] = ()

    def names(self, rows: np.ndarray) -> np.ndarray:
        """The names of the events at positions rows."""
        out = np.empty(len(rows), dtype=object)
        offset = 0
        for part in self.name_parts:
            n = len(part)
            sel = (rows >= offset) & (rows < offset + n)
            values = (
                part.iloc[rows[sel] - offset]
                if isinstance(part, pd.Series)
                else part[rows[sel] - offset]
            )
            out[sel] = [str(v) for v in values]
            offset += n
        return out


@dataclass(frozen=True)
class GapCauses:
    """Idle gaps of one device and the host time under them, by cause."""

    device: int
    gap_starts: np.ndarray
    gap_ends: np.ndarray
    by_cause: dict[str, np.ndarray]  # cause -> ns per gap; per gap they sum to its length
    events: dict[str, HostEvents]

    @property
    def idle_ns(self) -> int:
        """All idle time in the window."""
        return int((self.gap_ends - self.gap_starts).sum())

    def total(self, cause: str) -> int:
        """ns of idle time given to a cause."""
        return int(self.by_cause[cause].sum())

    def top_calls(self, cause: str, limit: int = 3) -> list[tuple[str, int, int]]:
        """(name, calls, ns under gaps) of the cause's events that overlap the gaps most."""
        ev = self.events.get(cause)
        if ev is None or not len(ev.starts):
            return []
        under = covered_ns_each(ev.starts, ev.ends, self.gap_starts, self.gap_ends)
        hit = np.flatnonzero(under > 0)
        if not len(hit):
            return []
        df = pd.DataFrame({"name": ev.names(hit), "ns": under[hit]})
        g = df.groupby("name")["ns"].agg(["count", "sum"]).sort_values("sum", ascending=False)
        return [(str(n), int(c), int(s)) for n, c, s in g.head(limit).itertuples()]


def blocking_calls(tf: TraceFrames) -> pd.DataFrame:
    """Blocking runtime calls (TraceFrames.host_syncs) and item()-like ops: name, ts_ns, end_ns
    (TraceFrames.blocking_calls caches it)."""
    ops = tf.cpu_ops
    return pd.concat(
        [tf.host_syncs[["name", "ts_ns", "end_ns"]], ops[ops["name"].isin(SYNC_OPS)][
            ["name", "ts_ns", "end_ns"]
        ]],
        ignore_index=True,
    )  # fmt: skip


def unrecorded_waits(tf: TraceFrames) -> pd.DataFrame:
    """Blocking calls that wait while no recorded device work runs (see `unrecorded`;
    TraceFrames.unrecorded_waits caches it)."""
    syncs = tf.blocking_calls
    length = (syncs["end_ns"] - syncs["ts_ns"]).to_numpy()
    busy = tf.gpu_busy_events
    covered = covered_ns_each(
        syncs["ts_ns"].to_numpy(), syncs["end_ns"].to_numpy(),
        busy["ts_ns"].to_numpy(), busy["end_ns"].to_numpy(),
    )  # fmt: skip
    waits = (length >= UNRECORDED_MIN_NS) & (covered < UNRECORDED_COVER * length)
    return syncs[waits].reset_index(drop=True)


def host_events(tf: TraceFrames) -> dict[str, HostEvents]:
    """The host events of each cause (python has none: it is what is left)."""
    rt = tf.runtime_calls
    family = rt["family"]
    out: dict[str, HostEvents] = {}
    out["unrecorded"] = _events(tf.unrecorded_waits)
    init = tf.init
    out["init"] = HostEvents(init.starts, init.ends, (np.full(len(init.starts), "first call"),))
    annotations = tf.annotations
    out["data loading"] = _events(
        annotations[match_prefix(annotations["name"], (_DATALOADER_PREFIX,))]
    )
    out["collective"] = _events(tf.comm_cpu)
    out["allocator"] = _events(rt[family == "allocator"])
    out["sync"] = _events(tf.blocking_calls)
    enqueue = rt[(family == "launch") | (family == "copy")]
    top = _top_level_ops(tf)
    launched = _ops_with_launches(top, enqueue)
    out["launch"] = _events(enqueue, top[launched])
    out["cpu ops"] = _events(top[~launched])
    return out


def device_idle(tf: TraceFrames) -> GapCauses | None:
    """The busiest device's idle gaps in the window and their causes; None without GPU work."""
    busy = tf.gpu_busy_events
    if not len(busy):
        return None
    device = int(busy.groupby("device", observed=True)["dur_ns"].sum().idxmax())
    on_dev = busy[busy["device"] == device]
    lo, hi = tf.window
    gap_s, gap_e = gaps(on_dev["ts_ns"].to_numpy(), on_dev["end_ns"].to_numpy(), lo, hi)
    return gap_causes(tf, gap_s, gap_e, device)


def gap_causes(
    tf: TraceFrames, gap_starts: np.ndarray, gap_ends: np.ndarray, device: int = -1
) -> GapCauses:
    """Split each gap's length over CAUSES (see the module docstring)."""
    events = host_events(tf)
    by_cause: dict[str, np.ndarray] = {}
    acc_s = np.empty(0, dtype=np.int64)
    acc_e = np.empty(0, dtype=np.int64)
    before = np.zeros(len(gap_starts), dtype=np.int64)
    for cause in CAUSES[:-1]:
        ev = events[cause]
        # only events that reach into a gap matter (most run while the device is busy)
        near = covered_ns_each(ev.starts, ev.ends, gap_starts, gap_ends) > 0
        acc_s, acc_e = union_intervals(
            np.concatenate([acc_s, ev.starts[near]]), np.concatenate([acc_e, ev.ends[near]])
        )
        covered = covered_ns_each(gap_starts, gap_ends, acc_s, acc_e)
        by_cause[cause] = covered - before
        before = covered
    by_cause["python"] = (gap_ends - gap_starts) - before
    # inside a short gap, host work that is not a runtime call is the model's launch overhead
    short = (gap_ends - gap_starts) < SHORT_GAP_NS
    for cause in ("cpu ops", "python"):
        by_cause["launch"] = by_cause["launch"] + np.where(short, by_cause[cause], 0)
        by_cause[cause] = np.where(short, 0, by_cause[cause])
    return GapCauses(device, gap_starts, gap_ends, by_cause, events)


def _events(*frames: pd.DataFrame) -> HostEvents:
    return HostEvents(
        np.concatenate([df["ts_ns"].to_numpy(dtype=np.int64) for df in frames]),
        np.concatenate([df["end_ns"].to_numpy(dtype=np.int64) for df in frames]),
        tuple(df["name"] for df in frames),
    )


def match_prefix(names: pd.Series, prefixes: tuple[str, ...]) -> np.ndarray:
    """Mask of a categorical name column whose value starts with one of prefixes, decided once
    per distinct name present."""
    cats = names.cat.categories
    codes = names.cat.codes.to_numpy()
    present = np.unique(codes[codes >= 0])
    hit = np.zeros(len(cats) + 1, dtype=bool)
    hit[present] = [str(cats[c]).startswith(prefixes) for c in present.tolist()]
    return hit[codes]


def _top_level_ops(tf: TraceFrames) -> pd.DataFrame:
    """Outermost CPU ops per thread (step and DataLoader spans of legacy traces left out)."""
    ops = tf.cpu_ops
    ops = ops[~match_prefix(ops["name"], ("ProfilerStep#", _DATALOADER_PREFIX))]
    mask = outermost(ops["tid"].to_numpy(), ops["ts_ns"].to_numpy(), ops["end_ns"].to_numpy())
    return ops[mask]


def _ops_with_launches(top: pd.DataFrame, enqueue: pd.DataFrame) -> np.ndarray:
    """Mask of the top-level ops inside which at least one launch or copy was issued."""
    hit = np.zeros(len(top), dtype=bool)
    if not len(top) or not len(enqueue):
        return hit
    idx = innermost_containing(
        top["tid"].to_numpy(),
        top["ts_ns"].to_numpy(),
        top["end_ns"].to_numpy(),
        enqueue["tid"].to_numpy(),
        enqueue["ts_ns"].to_numpy(),
    )
    hit[idx[idx >= 0]] = True
    return hit
