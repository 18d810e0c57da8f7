"""host-sync: the host blocks on the device (item(), synchronize, blocking copies) and the GPU
pays for it.

Detects: GPU traces: device time lost to synchronising calls; CPU traces: Python loops of
    `.item()` calls (each one a dispatcher round trip that serialises the loop).
Signal:
    - GPU: blocking calls are implicit syncs (stream/event synchronize, CUDA and HIP alike;
      blocking copies: a device-to-host or pageable cudaMemcpy*/hipMemcpy*, matched by
      correlation id, and hipMemcpyWithStream; aten::item / _local_scalar_dense / is_nonzero:
      what `.item()`, `.cpu()`, `.tolist()` and `if tensor:` cost) and, separately, explicit
      device syncs (cuda/hipDeviceSynchronize: `torch.cuda.synchronize()`). A sync that waits
      while the GPU computes costs nothing by itself; what it costs is (a) compute-idle time
      while it blocks (the GPU waits on something else: a collective, another stream) and (b)
      the idle time after it returns, when the drained queue waits for the host's next work,
      up to the time the host spent waiting (work it could have done meanwhile). Compute is
      kernels other than collectives, copies and sets (a collective waiting for its peers
      computes nothing). Impact = that lost time over the window; the blocked share is
      evidence only.
    - CPU: top-level read-back ops (aten::item, and aten::unbind / aten::select: iterating a
      tensor element by element) clustered into loops (gaps <= ITEM_LOOP_GAP_NS); a cluster with
      at least ITEM_LOOP_MIN_CALLS item() calls is a loop; the loops' span over the window is the
      cost (the profiler sees the calls, the Python between them is loop time too).
Thresholds: SYNC_MEDIUM 5 % and SYNC_HIGH 20 % of the window lost. An explicit synchronize
    alone is capped at medium: one per step is how inference loops time themselves or hand
    results back. ITEM_LOOP_GAP_NS 1 ms: a Python loop body between two item() calls takes
    microseconds, so a millisecond without one ends the loop; a loop needs ITEM_LOOP_MIN_CALLS
    (8) calls to count. SYNC_CLUSTER_GAP_NS 1 ms, the same pause: blocking calls closer than
    that are one synchronous stretch (a synchronize, then the copies of its results).
Evidence: lost share and ms, blocked share, calls per step, the slowest call, item() count.
Recipes: batching (a sync per call is then paid once per batch); CUDA graphs and compile cannot
    capture a sync, so the finding also says how to change the code.
False positives: a final read-back that the next step's host work depends on (it cannot be
    overlapped); syncs in a trace cut mid-step.
References: PyTorch CUDA semantics ("Asynchronous execution"); HTA critical-path analysis
    (cuda_sync edges); NVIDIA "CUDA C++ Best Practices": avoid host-device synchronisation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from dsprof.analyzers.trace_scope import (
    PerTraceAnalyzer,
    clamp01,
    ms,
    severity_for,
    share_evidence,
    worse_severity,
)
from dsprof.core.findings import Evidence, Finding, Severity
from dsprof.trace.frames import COMM_KERNEL_RE, match_names
from dsprof.trace.intervals import (
    busy_ns,
    clip,
    clusters,
    covered_ns_each,
    outermost,
    union_intervals,
)

if TYPE_CHECKING:
    from dsprof.trace.frames import TraceFrames

SYNC_MEDIUM = 0.05
SYNC_HIGH = 0.20
ITEM_LOOP_GAP_NS = 1_000_000
ITEM_LOOP_MIN_CALLS = 8
SYNC_CLUSTER_GAP_NS = 1_000_000
# a sync per call is paid once per batch when requests are batched; the real fix is a code
# change the finding spells out (CUDA graphs and compile cannot capture a sync)
RECIPES = ["batching"]
# what a per-element read-back loop runs: iterating a tensor (unbind, select), then item() each
READBACK_OPS = frozenset(
    {"aten::item", "aten::_local_scalar_dense", "aten::unbind", "aten::select"}
)
SYNC_OPS = frozenset({"aten::item", "aten::_local_scalar_dense", "aten::is_nonzero"})


def _steps(tf: TraceFrames) -> int:
    return max(len(tf.steps), 1)


def _dominant(*frames: pd.DataFrame) -> str:
    """Which kind of sync blocks longest (by summed duration)."""
    labels = (
        "item()",
        "stream/event syncs",
        "blocking device-to-host copies",
        "torch.cuda.synchronize()",
    )
    totals = [int(df["dur_ns"].sum()) for df in frames]
    return labels[int(np.argmax(totals))]


def compute_busy(tf: TraceFrames) -> tuple[np.ndarray, np.ndarray]:
    """Union of the busiest device's compute: kernels (collectives excluded), copies, sets.

    A collective kernel that waits for its peers keeps the device "busy" while it computes
    nothing, so a sync that waits behind one is waiting on the collective, and the device's
    compute is idle.
    """
    busy = tf.gpu_busy_events
    device = int(busy.groupby("device", observed=True)["dur_ns"].sum().idxmax())
    busy = busy[(busy["device"] == device)]
    comm = (busy["cat"] == "kernel") & match_names(busy["name"], COMM_KERNEL_RE)
    busy = busy[~comm]
    return union_intervals(busy["ts_ns"].to_numpy(), busy["end_ns"].to_numpy())


def lost_ns(
    starts: np.ndarray, ends: np.ndarray, busy_s: np.ndarray, busy_e: np.ndarray, hi: int
) -> int:
    """Device time the blocking calls [starts, ends) cost (see the module docstring).

    Calls less than SYNC_CLUSTER_GAP_NS apart are one synchronous stretch of the host (a
    synchronize, then the read-back copies of its results). For each stretch: the compute-idle
    time during its calls, plus the compute-idle time right after it (until the device's next
    work, or the next stretch), up to the time its calls waited while the device was busy: had
    the host not waited, it could have done that later work then.
    """
    s, e = union_intervals(starts, ends)
    if not len(s):
        return 0
    length = e - s
    idle_during = length - covered_ns_each(s, e, busy_s, busy_e)
    waited = length - idle_during
    first = np.flatnonzero(np.r_[True, s[1:] - e[:-1] > SYNC_CLUSTER_GAP_NS])
    idle_during = np.add.reduceat(idle_during, first)
    waited = np.add.reduceat(waited, first)
    end = np.maximum.reduceat(e, first)
    next_block = np.append(s[first[1:]], hi)
    # device busy when the stretch ends: its queue was not drained
    i = np.searchsorted(busy_s, end, side="right") - 1
    busy_at_end = (i >= 0) & (busy_e[np.maximum(i, 0)] > end)
    nxt = np.searchsorted(busy_s, end, side="left")
    next_start = np.where(nxt < len(busy_s), busy_s[np.minimum(nxt, len(busy_s) - 1)], hi)
    following = np.clip(np.minimum(np.minimum(next_start, next_block), hi) - end, 0, None)
    following = np.where(busy_at_end, 0, following)
    return int((idle_during + np.minimum(waited, following)).sum())


def _gpu_trace(tf: TraceFrames) -> list[Finding]:
    lo, hi = tf.window
    # a long wait while no recorded device work runs waits for work the trace does not hold:
    # what the device did then is unknown, so it is not counted (dsprof.trace.idle, unrecorded)
    unknown = tf.unrecorded_waits
    syncs = tf.in_window(tf.host_syncs)
    syncs = syncs[~syncs["ts_ns"].isin(unknown["ts_ns"])]
    ops = tf.in_window(tf.cpu_ops)
    item_ops = ops[ops["name"].isin(SYNC_OPS) & ~ops["ts_ns"].isin(unknown["ts_ns"])]
    explicit = syncs[syncs["kind"] == "explicit"]
    implicit_rt = syncs[syncs["kind"] == "implicit"]
    copies = syncs[syncs["kind"] == "copy"]
    implicit = (implicit_rt, item_ops, copies)
    implicit_s, implicit_e = clip(
        np.concatenate([df["ts_ns"].to_numpy() for df in implicit]),
        np.concatenate([df["end_ns"].to_numpy() for df in implicit]),
        lo,
        hi,
    )
    explicit_s, explicit_e = clip(
        explicit["ts_ns"].to_numpy(), explicit["end_ns"].to_numpy(), lo, hi
    )
    busy_s, busy_e = compute_busy(tf)
    window = tf.window_ns
    implicit_lost = lost_ns(implicit_s, implicit_e, busy_s, busy_e, hi)
    explicit_lost = lost_ns(explicit_s, explicit_e, busy_s, busy_e, hi)
    all_s, all_e = (
        np.concatenate([implicit_s, explicit_s]),
        np.concatenate([implicit_e, explicit_e]),
    )
    lost = lost_ns(all_s, all_e, busy_s, busy_e, hi)
    blocked_ns = busy_ns(all_s, all_e, lo, hi)
    implicit_sev = severity_for(implicit_lost / window, SYNC_MEDIUM, SYNC_HIGH)
    explicit_sev: Severity | None = severity_for(explicit_lost / window, SYNC_MEDIUM, SYNC_HIGH)
    if explicit_sev == "high":
        explicit_sev = "medium"
    severity = worse_severity(implicit_sev, explicit_sev)
    if severity is None:
        return []
    share = lost / window
    n_calls = (
        len(implicit_rt)
        + len(explicit)
        + len(copies)
        + int((item_ops["name"] == "aten::item").sum())
    )
    durations = np.concatenate([implicit_e - implicit_s, explicit_e - explicit_s])
    w = tf.window_label
    top = _dominant(item_ops, implicit_rt, copies, explicit)
    evidence = [
        share_evidence("sync_lost_share", share, SYNC_MEDIUM, tf),
        Evidence(metric="sync_lost_ms", value=ms(lost), unit="ms", window=w, source="trace"),
        share_evidence("host_blocked_share", blocked_ns / window, SYNC_MEDIUM, tf),
        share_evidence("implicit_sync_lost_share", implicit_lost / window, SYNC_MEDIUM, tf),
        share_evidence("explicit_sync_lost_share", explicit_lost / window, SYNC_MEDIUM, tf),
        Evidence(metric="blocking_copies", value=len(copies), unit="count", window=w),
        Evidence(
            metric="item_calls",
            value=int((item_ops["name"] == "aten::item").sum()),
            unit="count",
            window=w,
        ),
        Evidence(
            metric="sync_calls_per_step",
            value=round(n_calls / _steps(tf), 1),
            unit="count",
            window=w,
        ),
        Evidence(
            metric="longest_sync_ms",
            value=ms(durations.max() if len(durations) else 0),
            unit="ms",
            window=w,
        ),
    ]
    return [
        Finding(
            category="host-sync",
            severity=severity,
            title=(
                f"Syncs cost the GPU {share:.0%} of {w} ({n_calls} syncs, mostly {top}; "
                f"host blocked {blocked_ns / window:.0%})"
            ),
            impact=clamp01(share),
            evidence=evidence,
            recipes=RECIPES,
            analyzer=HostSyncAnalyzer.name,
            detail=(
                "Each sync empties the GPU's queue: the GPU then idles while the host does the "
                "work that follows. Keep results on the GPU and read them back once per step "
                "(one .tolist() or a non_blocking copy into pinned memory), and avoid "
                "data-dependent Python control flow on GPU tensors."
            ),
        )
    ]


def _cpu_trace(tf: TraceFrames) -> list[Finding]:
    ops = tf.in_window(tf.cpu_ops)
    n_items = int((ops["name"] == "aten::item").sum())
    if n_items < ITEM_LOOP_MIN_CALLS:
        return []
    top = ops[outermost(ops["tid"].to_numpy(), ops["ts_ns"].to_numpy(), ops["end_ns"].to_numpy())]
    readback = top[top["name"].isin(READBACK_OPS)]
    cl_s, cl_e, _ = clusters(
        readback["ts_ns"].to_numpy(), readback["end_ns"].to_numpy(), ITEM_LOOP_GAP_NS
    )
    items = readback[readback["name"] == "aten::item"]["ts_ns"].to_numpy()
    per_cluster = np.bincount(np.searchsorted(cl_s, items, side="right") - 1, minlength=len(cl_s))
    loops = per_cluster >= ITEM_LOOP_MIN_CALLS
    lo, hi = tf.window
    loop_ns = busy_ns(cl_s[loops], cl_e[loops], lo, hi)
    share = loop_ns / tf.window_ns
    severity = severity_for(share, SYNC_MEDIUM, SYNC_HIGH)
    if severity is None:
        return []
    w = tf.window_label
    per_step = n_items / _steps(tf)
    return [
        Finding(
            category="host-sync",
            severity=severity,
            title=f".item() loops take {share:.0%} of {w} ({per_step:.0f} item() calls per step)",
            impact=clamp01(share),
            evidence=[
                share_evidence("item_loop_share", share, SYNC_MEDIUM, tf),
                Evidence(
                    metric="item_loop_ms", value=ms(loop_ns), unit="ms", window=w, source="trace"
                ),
                Evidence(
                    metric="item_calls_per_step", value=round(per_step, 1), unit="count", window=w
                ),
                Evidence(metric="item_loops", value=int(loops.sum()), unit="count", window=w),
            ],
            recipes=RECIPES,
            analyzer=HostSyncAnalyzer.name,
            detail="Each .item() returns one Python number and iterating a tensor makes one view "
            "per element; keep results as tensors and convert once per step (.tolist()).",
        )
    ]


class HostSyncAnalyzer(PerTraceAnalyzer):
    """Blocking syncs on GPU traces, item() loops on CPU traces (see the module docstring)."""

    name: ClassVar[str] = "host-sync"
    on_gpu = _gpu_trace
    on_cpu = _cpu_trace
