"""gpu-idle: the GPU waits with nothing to run, and why (host launch, data loading, sync).

Detects: idle time of the busiest GPU inside the analysis window (ProfilerStep span, else the
    whole trace), and attributes each idle gap to a cause.
Signal: busy = union of kernel, memcpy and memset intervals on that device; idle = window - busy.
    Each gap is classified, first match wins:
    - kernel wait: shorter than KERNEL_WAIT_NS, the unavoidable launch-to-launch spacing;
    - data loading: at least half of it covered by `enumerate(DataLoader)` spans on the host;
    - sync: it starts within SYNC_SLACK_NS after a host synchronisation call returned
      (TraceFrames.host_syncs: cudaStreamSynchronize, cudaDeviceSynchronize,
      cudaEventSynchronize, a blocking device-to-host or pageable copy) or is mostly covered by one: the queue drained and the host had to refill it;
    - host launch: otherwise: the host did not enqueue work fast enough (HTA's "host wait").
Thresholds: IDLE_MEDIUM (30 %: the seed documents' "idle above 30 %" rule, applied to time) and
    IDLE_HIGH (50 %: the GPU idles more than it works). KERNEL_WAIT_NS = 30 ns is HTA's
    `consecutive_kernel_delay` default (get_idle_time_breakdown). SYNC_SLACK_NS = 100 us is HTA's
    `launch_delay_cutoff` (get_cuda_kernel_launch_stats): a gap starting that close to a sync's
    return is the drained queue refilling.
Evidence: idle share, idle ms, largest gap, gap count, the idle share per cause, the device.
False positives: traces cut mid-step (whole-trace windows include profiler start-up); multi-stream
    jobs where another device does the work (only the busiest device is judged).
References: HTA Idle Time Breakdown (hta.readthedocs.io, features/idle_time_breakdown);
    PyTorch Profiler TensorBoard plugin's "GPU Utilization" view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from dsprof.analyzers.trace_scope import (
    clamp01,
    gpu_traces,
    ms,
    severity_for,
    share_evidence,
    worst_per_trace,
)
from dsprof.core.findings import Evidence, Finding
from dsprof.trace.frames import DATALOADER_PREFIX
from dsprof.trace.intervals import covered_ns_each, gaps

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData
    from dsprof.trace.frames import TraceFrames

IDLE_MEDIUM = 0.30
IDLE_HIGH = 0.50
KERNEL_WAIT_NS = 30
SYNC_SLACK_NS = 100_000
CAUSE_RECIPES: dict[str, list[str]] = {
    "host launch": ["cuda-graphs", "compile", "batching"],
    "data loading": ["dataloader", "pinned-memory"],
    "sync": ["cuda-graphs"],
    "kernel wait": ["compile", "cuda-graphs"],
}


@dataclass(frozen=True)
class IdleBreakdown:
    """Idle time of one device inside the window, split by cause (ns per cause)."""

    device: int
    idle_ns: int
    window_ns: int
    gap_count: int
    largest_gap_ns: int
    by_cause: dict[str, int]


def idle_breakdown(tf: TraceFrames) -> IdleBreakdown | None:
    """Idle time of the busiest device in the window, split by cause; None without GPU work."""
    busy = tf.gpu_busy_events
    if not len(busy):
        return None
    device = int(busy.groupby("device", observed=True)["dur_ns"].sum().idxmax())
    on_dev = busy[busy["device"] == device]
    lo, hi = tf.window
    gap_s, gap_e = gaps(on_dev["ts_ns"].to_numpy(), on_dev["end_ns"].to_numpy(), lo, hi)
    length = gap_e - gap_s
    names = tf.annotations["name"].astype(str)
    dl = tf.annotations[names.str.startswith(DATALOADER_PREFIX)]
    dl_cov = covered_ns_each(gap_s, gap_e, dl["ts_ns"].to_numpy(), dl["end_ns"].to_numpy())
    syncs = tf.host_syncs.sort_values("end_ns")
    sync_cov = covered_ns_each(gap_s, gap_e, syncs["ts_ns"].to_numpy(), syncs["end_ns"].to_numpy())
    sync_ends = syncs["end_ns"].to_numpy()
    after_sync = np.zeros(len(gap_s), dtype=bool)
    if len(sync_ends):
        # the last sync return at or before (gap start + slack)
        i = np.searchsorted(sync_ends, gap_s + SYNC_SLACK_NS, side="right") - 1
        after_sync = (i >= 0) & (gap_s - sync_ends[np.maximum(i, 0)] <= SYNC_SLACK_NS)
    cause = np.select(
        [
            length < KERNEL_WAIT_NS,
            dl_cov * 2 >= length,
            after_sync | (sync_cov * 2 >= length),
        ],
        ["kernel wait", "data loading", "sync"],
        default="host launch",
    )
    by_cause = {c: int(length[cause == c].sum()) for c in CAUSE_RECIPES}
    return IdleBreakdown(
        device=device,
        idle_ns=int(length.sum()),
        window_ns=hi - lo,
        gap_count=int((length >= KERNEL_WAIT_NS).sum()),
        largest_gap_ns=int(length.max()) if len(length) else 0,
        by_cause=by_cause,
    )


def _analyze_trace(tf: TraceFrames) -> list[Finding]:
    b = idle_breakdown(tf)
    if b is None:
        return []
    idle = b.idle_ns / b.window_ns
    severity = severity_for(idle, IDLE_MEDIUM, IDLE_HIGH)
    if severity is None:
        return []
    idle_ns = max(b.idle_ns, 1)
    top = max(b.by_cause, key=lambda c: b.by_cause[c])
    side = "host-bound" if top != "kernel wait" else "kernel spacing"
    ranked = sorted(b.by_cause.items(), key=lambda kv: -kv[1])
    parts = ", ".join(f"{c} {v / idle_ns:.0%}" for c, v in ranked if v)
    device_name = tf.device_name(b.device) or f"device {b.device}"
    w = tf.window_label
    evidence = [
        share_evidence("gpu_idle_share", idle, IDLE_MEDIUM, tf),
        Evidence(metric="gpu_idle_ms", value=ms(idle_ns), unit="ms", window=w, source="trace"),
        Evidence(metric="largest_gap_ms", value=ms(b.largest_gap_ns), unit="ms", window=w),
        Evidence(metric="idle_gaps", value=b.gap_count, unit="count", window=w),
        Evidence(metric="idle_cause", value=top, window=w, source="trace"),
    ]
    evidence += [
        Evidence(
            metric=f"idle_share_{c.replace(' ', '_')}",
            value=round(v / idle_ns, 4),
            unit="fraction of idle",
            window=w,
            source="trace",
        )
        for c, v in ranked
        if v
    ]
    evidence.append(Evidence(metric="device", value=device_name, source="deviceProperties"))
    return [
        Finding(
            category="gpu-idle",
            severity=severity,
            title=f"GPU idle {idle:.0%} of {w}, {side}: mostly {top} ({parts})",
            impact=clamp01(idle),
            evidence=evidence,
            recipes=CAUSE_RECIPES[top],
            analyzer=GpuIdleAnalyzer.name,
            detail=(
                f"{device_name} ran nothing for {ms(idle_ns)} ms of {ms(b.window_ns)} ms "
                f"in {b.gap_count} gaps."
            ),
        )
    ]


class GpuIdleAnalyzer:
    """See the module docstring."""

    name: ClassVar[str] = "gpu-idle"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("trace",)

    def analyze(self, run: RunData) -> list[Finding]:
        """Findings for the busiest GPU of each trace (the worst rank when there are several)."""
        return worst_per_trace(gpu_traces(run), _analyze_trace)
