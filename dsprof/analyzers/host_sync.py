"""host-sync: the host blocks on the device (item(), synchronize, blocking copies) inside the step.

Detects: GPU traces: time the host spends blocked in synchronising calls; CPU traces: Python loops
    of `.item()` calls (each one a dispatcher round trip that serialises the loop).
Signal:
    - GPU: union of implicit syncs (cudaStreamSynchronize, cudaEventSynchronize, blocking copies:
      cudaMemcpy(Async) of a device-to-host or pageable copy, matched by correlation id, which
      returns only when the copy is done; aten::item / aten::_local_scalar_dense / aten::is_nonzero: what `.item()`,
      `.cpu()`, `.tolist()` and `if tensor:` cost) and, separately, explicit device syncs
      (cudaDeviceSynchronize: `torch.cuda.synchronize()`), each over the analysis window.
    - CPU: top-level read-back ops (aten::item, and aten::unbind / aten::select: iterating a
      tensor element by element) clustered into loops (gaps <= ITEM_LOOP_GAP_NS); a cluster with
      at least ITEM_LOOP_MIN_CALLS item() calls is a loop; the loops' span over the window is the
      cost (the profiler sees the calls, the Python between them is loop time too).
Thresholds: SYNC_MEDIUM 5 % and SYNC_HIGH 20 % of the window. An explicit synchronize alone is
    capped at medium: one per step is how inference loops time themselves or hand results back,
    and while it blocks the host the GPU keeps working. ITEM_LOOP_GAP_NS 1 ms: a Python loop
    body between two item() calls takes microseconds, so a millisecond without one ends the
    loop; a loop needs ITEM_LOOP_MIN_CALLS (8) calls to count.
Evidence: blocked share and ms, calls per step, the slowest call, item() count.
False positives: a trace whose steps end in a deliberate synchronize for timing (capped);
    syncs that overlap a GPU-bound stretch cost less than their blocked time.
References: PyTorch CUDA semantics ("Asynchronous execution"); HTA critical-path analysis
    (cuda_sync edges); NVIDIA "CUDA C++ Best Practices": avoid host-device synchronisation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from dsprof.analyzers.trace_scope import (
    clamp01,
    cpu_traces,
    gpu_traces,
    ms,
    severity_for,
    share_evidence,
    worse_severity,
    worst_per_trace,
)
from dsprof.core.findings import Evidence, Finding, Severity
from dsprof.trace.intervals import busy_ns, clusters, outermost

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData
    from dsprof.trace.frames import TraceFrames

SYNC_MEDIUM = 0.05
SYNC_HIGH = 0.20
ITEM_LOOP_GAP_NS = 1_000_000
ITEM_LOOP_MIN_CALLS = 8
# what a per-element read-back loop runs: iterating a tensor (unbind, select), then item() each
READBACK_OPS = frozenset(
    {"aten::item", "aten::_local_scalar_dense", "aten::unbind", "aten::select"}
)
SYNC_OPS = frozenset({"aten::item", "aten::_local_scalar_dense", "aten::is_nonzero"})
RECIPES = ["cuda-graphs", "compile"]


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


def _gpu_trace(tf: TraceFrames) -> list[Finding]:
    lo, hi = tf.window
    syncs = tf.in_window(tf.host_syncs)
    ops = tf.in_window(tf.cpu_ops)
    item_ops = ops[ops["name"].isin(SYNC_OPS)]
    explicit = syncs[syncs["kind"] == "explicit"]
    implicit_rt = syncs[syncs["kind"] == "implicit"]
    copies = syncs[syncs["kind"] == "copy"]
    implicit = (implicit_rt, item_ops, copies)
    implicit_s = np.concatenate([df["ts_ns"].to_numpy() for df in implicit])
    implicit_e = np.concatenate([df["end_ns"].to_numpy() for df in implicit])
    implicit_ns = busy_ns(implicit_s, implicit_e, lo, hi)
    explicit_ns = busy_ns(explicit["ts_ns"].to_numpy(), explicit["end_ns"].to_numpy(), lo, hi)
    all_ns = busy_ns(
        np.concatenate([implicit_s, explicit["ts_ns"].to_numpy()]),
        np.concatenate([implicit_e, explicit["end_ns"].to_numpy()]),
        lo,
        hi,
    )
    window = tf.window_ns
    implicit_sev = severity_for(implicit_ns / window, SYNC_MEDIUM, SYNC_HIGH)
    explicit_sev: Severity | None = severity_for(explicit_ns / window, SYNC_MEDIUM, SYNC_HIGH)
    if explicit_sev == "high":
        explicit_sev = "medium"
    severity = worse_severity(implicit_sev, explicit_sev)
    if severity is None:
        return []
    share = all_ns / window
    n_calls = (
        len(implicit_rt)
        + len(explicit)
        + len(copies)
        + int((item_ops["name"] == "aten::item").sum())
    )
    durations = np.concatenate([implicit_e - implicit_s, explicit["dur_ns"].to_numpy()])
    w = tf.window_label
    top = _dominant(item_ops, implicit_rt, copies, explicit)
    evidence = [
        share_evidence("host_blocked_share", share, SYNC_MEDIUM, tf),
        Evidence(metric="host_blocked_ms", value=ms(all_ns), unit="ms", window=w, source="trace"),
        share_evidence("implicit_sync_share", implicit_ns / window, SYNC_MEDIUM, tf),
        share_evidence("explicit_sync_share", explicit_ns / window, SYNC_MEDIUM, tf),
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
            title=f"Host blocked {share:.0%} of {w} in {n_calls} syncs, mostly {top}",
            impact=clamp01(share),
            evidence=evidence,
            recipes=RECIPES,
            analyzer=HostSyncAnalyzer.name,
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
            recipes=["batching", "compile"],
            analyzer=HostSyncAnalyzer.name,
            detail="Each .item() returns one Python number and iterating a tensor makes one view "
            "per element; keep results as tensors and convert once per step (.tolist()).",
        )
    ]


class HostSyncAnalyzer:
    """See the module docstring."""

    name: ClassVar[str] = "host-sync"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("trace",)

    def analyze(self, run: RunData) -> list[Finding]:
        """Blocking syncs on GPU traces, item() loops on CPU traces."""
        return worst_per_trace(gpu_traces(run), _gpu_trace) + worst_per_trace(
            cpu_traces(run), _cpu_trace
        )
