"""idle-sm: kernels launch too few blocks to fill the GPU's streaming multiprocessors.

Detects: kernel time during which part of the SMs has no block to run: grids smaller than the SM
    count ("blocks per SM" below 1), and low achieved occupancy.
Signal: Kineto records per kernel `blocks per SM` (grid blocks / SM count) and `est. achieved
    occupancy %`. Kernels on several streams run at once and share the SMs, so the SM fill at
    each moment is the sum of min(blocks per SM, 1) over the kernels running then (collectives
    included: their few SMs are in use), capped at 1; idle-SM time = integral of (1 - fill)
    over the moments when a non-collective kernel runs (a moment with only collectives running
    is communication-bound's to judge). The idle fraction is that over the judged time; impact
    is it over the window. A kernel without launch statistics counts as filling the GPU; a
    trace without any (ROCm, older Kineto) is not judged.
Thresholds: IDLE_SM_FRACTION 30 % (the seed documents' "idle CUDA cores above 30 %");
    IDLE_SM_MEDIUM 5 % and IDLE_SM_HIGH 25 % of the window lost to idle SMs. Nsight Compute's
    launch-statistics rule warns likewise when a grid has fewer blocks than SMs ("tail effect" /
    "the grid is too small to fill the available resources").
Evidence: idle-SM fraction of kernel time, its share of the window, time-weighted achieved
    occupancy, the kernels with the most idle-SM time, the SM count.
False positives: kernels whose blocks are few but long-running and register-heavy (a full SM
    can hold fewer blocks than Kineto assumes).
References: Nsight Compute Kernel Profiling Guide, "Launch Statistics" and "Occupancy" sections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from dsprof.analyzers.trace_scope import PerTraceAnalyzer, clamp01, ms, severity_for, share_evidence
from dsprof.core.findings import Evidence, Finding
from dsprof.trace.frames import COMM_KERNEL_RE, map_names, match_names, short_kernel_name

if TYPE_CHECKING:
    from dsprof.trace.frames import TraceFrames

IDLE_SM_FRACTION = 0.30
IDLE_SM_MEDIUM = 0.05
IDLE_SM_HIGH = 0.25


def sm_fill_idle(
    starts: np.ndarray, ends: np.ndarray, fill: np.ndarray, judged: np.ndarray
) -> tuple[int, int]:
    """(idle-SM ns, judged ns) over time, kernels running at once adding up their SM fill.

    fill: each kernel's share of the SMs it can occupy (min(blocks per SM, 1)); judged: kernels
    whose running makes a moment count (a moment when only collectives run is not judged: they
    use few SMs by design, and their exposure is communication-bound's).
    """
    if not len(starts):
        return 0, 0
    t = np.concatenate([starts, ends])
    d_fill = np.concatenate([fill, -fill])
    d_judged = np.concatenate([judged.astype(np.int64), -judged.astype(np.int64)])
    order = np.argsort(t, kind="stable")
    t, d_fill, d_judged = t[order], d_fill[order], d_judged[order]
    level = np.cumsum(d_fill)[:-1]
    running = np.cumsum(d_judged)[:-1]
    seg = np.diff(t)
    on = running > 0
    idle = (seg * (1.0 - np.clip(level, 0.0, 1.0)))[on].sum()
    return round(float(idle)), int(seg[on].sum())


def _analyze_trace(tf: TraceFrames) -> list[Finding]:
    k = tf.in_window(tf.kernels)
    if not len(k) or not k["blocks_per_sm"].notna().any():
        return []  # no launch statistics (ROCm traces, old Kineto): nothing to judge
    device = int(k.groupby("device", observed=True)["dur_ns"].sum().idxmax())
    k = k[k["device"] == device]
    lo, hi = tf.window
    s, e = np.maximum(k["ts_ns"].to_numpy(), lo), np.minimum(k["end_ns"].to_numpy(), hi)
    bps = k["blocks_per_sm"].to_numpy()
    fill = np.where(np.isnan(bps), 1.0, np.minimum(bps, 1.0))  # unknown: assume it fills
    comm = match_names(k["name"], COMM_KERNEL_RE).to_numpy()
    idle_ns, judged_ns = sm_fill_idle(s, e, fill, ~comm)
    if not judged_ns:
        return []
    fraction = idle_ns / judged_ns
    impact = idle_ns / tf.window_ns
    if fraction < IDLE_SM_FRACTION:
        return []
    severity = severity_for(impact, IDLE_SM_MEDIUM, IDLE_SM_HIGH)
    if severity is None:
        return []
    k = k[~comm & ~np.isnan(bps)]
    dur = (np.minimum(k["end_ns"], hi) - np.maximum(k["ts_ns"], lo)).clip(lower=0).to_numpy()
    idle = dur * (1.0 - np.minimum(k["blocks_per_sm"].to_numpy(), 1.0))
    occ = k["occupancy_pct"].to_numpy()
    has_occ = ~np.isnan(occ)
    mean_occ = float((dur[has_occ] * occ[has_occ]).sum() / max(dur[has_occ].sum(), 1))
    top = (
        k.assign(idle=idle, short=map_names(k["name"], short_kernel_name))
        .groupby("short")["idle"]
        .sum()
        .sort_values(ascending=False)
        .head(3)
    )
    top_text = ", ".join(f"{n} {v / 1e6:.1f} ms" for n, v in top.items())
    sms = next(
        (p.get("numSms") for p in tf.device_properties if p.get("name") == tf.device_name()), None
    )
    w = tf.window_label
    evidence = [
        Evidence(
            metric="idle_sm_fraction_of_kernel_time",
            value=round(fraction, 4),
            unit="fraction",
            threshold=IDLE_SM_FRACTION,
            window=w,
            source="trace",
        ),
        share_evidence("idle_sm_share", impact, IDLE_SM_MEDIUM, tf),
        Evidence(metric="idle_sm_ms", value=ms(idle_ns), unit="ms", window=w),
        Evidence(metric="achieved_occupancy_pct", value=round(mean_occ, 1), unit="%", window=w),
        Evidence(metric="top_kernels", value=top_text, source="trace"),
    ]
    if sms:
        evidence.append(Evidence(metric="sm_count", value=int(sms), source="deviceProperties"))
    return [
        Finding(
            category="idle-sm",
            severity=severity,
            title=(
                f"SMs idle {fraction:.0%} of kernel time (grids smaller than the GPU); "
                f"{impact:.0%} of {w} at stake"
            ),
            impact=clamp01(impact),
            evidence=evidence,
            recipes=["batching"],  # bigger grids; compile and CUDA graphs keep the grid sizes
            analyzer=IdleSmAnalyzer.name,
        )
    ]


class IdleSmAnalyzer(PerTraceAnalyzer):
    """Idle-SM time of each GPU trace's kernels (see the module docstring)."""

    name: ClassVar[str] = "idle-sm"
    on_gpu = _analyze_trace
