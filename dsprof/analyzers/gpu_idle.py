"""gpu-idle: the GPU waits with nothing to run, and what the host was doing meanwhile.

Detects: idle time of the busiest GPU inside the analysis window (ProfilerStep span, else the
    steady state after one-time initialisation, else the whole trace), with the host time under
    the gaps split into measured causes.
Signal: busy = union of kernel, memcpy and memset intervals on that device; idle = window - busy.
    The host time under each gap is given to the causes whose host events overlap it
    (dsprof.trace.idle): one-time initialisation, data loading, waiting on
    collectives, allocator calls, blocking syncs and copies, kernel launches and op dispatch,
    CPU ops that run no GPU work, and time outside any recorded op (Python). CPU ops and
    Python together are "CPU work" (pre/post-processing, optimizer, decoding in the step). The
    largest cause names the finding and picks its recipes (CAUSE_RECIPES): launch-bound ->
    CUDA graphs / compile; allocator churn -> allocator settings; CPU work or data loading in
    the step -> overlap it (DataLoader workers); syncs, collectives and initialisation have no
    automatic recipe (host-sync and communication-bound say more; initialisation is paid once).
Thresholds: IDLE_MEDIUM (30 %: the seed documents' "idle above 30 %" rule, applied to time) and
    IDLE_HIGH (50 %: the GPU idles more than it works). Severity counts idle time that recurs:
    idle under one-time initialisation is shown, never graded (it is paid once per process), and
    so is a sync that waits while no recorded device work runs (unrecorded: the device was
    busy with work the trace does not hold).
Evidence: idle share, idle ms, largest gap, gap count, the largest cause and the calls behind
    it, each cause's share of the idle time, the device.
False positives: traces cut mid-step (whole-trace windows include profiler start-up); multi-stream
    jobs where another device does the work (only the busiest device is judged).
References: HTA Idle Time Breakdown (hta.readthedocs.io, features/idle_time_breakdown);
    PyTorch Profiler TensorBoard plugin's "GPU Utilization" view; PyTorch "CUDA semantics:
    memory management" (the caching allocator).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from dsprof.analyzers.trace_scope import PerTraceAnalyzer, clamp01, ms, severity_for, share_evidence
from dsprof.core.findings import Evidence, Finding
from dsprof.trace.idle import CAUSE_LABELS, GapCauses

if TYPE_CHECKING:
    from dsprof.trace.frames import TraceFrames

IDLE_MEDIUM = 0.30
IDLE_HIGH = 0.50
# measured causes (dsprof.trace.idle.CAUSES) as the finding names them: CPU ops and Python are both
# the host working on something other than feeding the GPU
HEADLINE = {
    "unrecorded": "unrecorded",
    "init": "init",
    "data loading": "data loading",
    "collective": "collective",
    "allocator": "allocator",
    "sync": "sync",
    "launch": "launch",
    "cpu ops": "cpu work",
    "python": "cpu work",
}
HEADLINE_LABELS = {
    **{HEADLINE[c]: label for c, label in CAUSE_LABELS.items()},
    "cpu work": "CPU work outside GPU ops (pre/post-processing, Python)",
}
CAUSE_RECIPES: dict[str, list[str]] = {
    "launch": ["cuda-graphs", "compile"],
    "allocator": ["alloc-conf"],
    "data loading": ["dataloader"],
    "cpu work": ["dataloader"],
    "sync": [],
    "collective": [],
    "init": [],
    "unrecorded": [],
}
CAUSE_ADVICE = {
    "launch": "The host issues kernels slower than the GPU runs them: capture the step in a "
    "CUDA graph or compile it.",
    "allocator": "Device memory is taken from and returned to the driver inside the step: keep "
    "PyTorch's caching allocator on (PYTORCH_NO_CUDA_MEMORY_CACHING unset) and give it room "
    "(PYTORCH_CUDA_ALLOC_CONF / PYTORCH_HIP_ALLOC_CONF expandable_segments).",
    "data loading": "The step waits for its next batch: load and preprocess in DataLoader "
    "workers so it overlaps GPU work.",
    "cpu work": "CPU work runs serialised with the GPU work: move pre/post-processing into "
    "DataLoader workers or another thread so it overlaps the GPU.",
    "sync": "The host waits for the device and then refills an empty queue: see host-sync.",
    "collective": "The host waits on other ranks: see communication-bound and straggler.",
    "init": "One-time set-up (context, modules, first calls): paid once per process; judge "
    "the steady state after it (warm up before measuring).",
    "unrecorded": "The host waited in a sync while no recorded device work ran: the device was "
    "busy with work the trace does not hold (launched before the profiler started, or by "
    "another thread or process); widen the trace to see it.",
}


def _headline(c: GapCauses) -> dict[str, int]:
    out: dict[str, int] = {}
    for cause, ns in c.by_cause.items():
        key = HEADLINE[cause]
        out[key] = out.get(key, 0) + int(ns.sum())
    return out


def _analyze_trace(tf: TraceFrames) -> list[Finding]:
    causes = tf.idle
    if causes is None:
        return []
    device = causes.device
    gap_s, gap_e = causes.gap_starts, causes.gap_ends
    idle_ns = max(causes.idle_ns, 1)
    window = tf.window_ns
    idle = causes.idle_ns / window
    by = _headline(causes)
    # one-time set-up and time whose device state the trace does not hold are not graded
    recurring = (causes.idle_ns - by.get("init", 0) - by.get("unrecorded", 0)) / window
    severity = severity_for(recurring, IDLE_MEDIUM, IDLE_HIGH)
    if severity is None:
        return []
    ranked = sorted(((c, v) for c, v in by.items() if v), key=lambda kv: -kv[1])
    top = ranked[0][0]
    parts = ", ".join(f"{c} {v / idle_ns:.0%}" for c, v in ranked[:4])
    device_name = tf.device_name(device) or f"device {device}"
    w = tf.window_label
    length = gap_e - gap_s
    evidence = [
        share_evidence("gpu_idle_share", idle, IDLE_MEDIUM, tf),
        Evidence(metric="idle_cause", value=top, window=w, source="trace"),
    ]
    calls = _top_calls(causes, top)
    if calls:
        evidence.append(Evidence(metric="idle_cause_calls", value=calls, window=w, source="trace"))
    evidence += [
        Evidence(metric="gpu_idle_ms", value=ms(causes.idle_ns), unit="ms", window=w),
        Evidence(
            metric="largest_gap_ms",
            value=ms(length.max()) if len(length) else 0.0,
            unit="ms",
            window=w,
        ),
        Evidence(metric="idle_gaps", value=len(length), unit="count", window=w),
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
    ]
    if by.get("cpu work"):
        evidence.append(
            Evidence(
                metric="cpu_work_outside_ops_ms",
                value=ms(causes.total("python")),
                unit="ms",
                window=w,
                source="trace: no recorded op (Python)",
            )
        )
    evidence.append(Evidence(metric="device", value=device_name, source="deviceProperties"))
    return [
        Finding(
            category="gpu-idle",
            severity=severity,
            title=f"GPU idle {idle:.0%} of {w}: mostly {HEADLINE_LABELS[top]} ({parts})",
            impact=clamp01(recurring),
            evidence=evidence,
            recipes=CAUSE_RECIPES[top],
            analyzer=GpuIdleAnalyzer.name,
            detail=(
                f"{device_name} ran nothing for {causes.idle_ns / 1e6:.1f} ms of "
                f"{window / 1e6:.1f} ms in {len(length)} gaps. {CAUSE_ADVICE[top]}"
            ),
        )
    ]


def _top_calls(causes: GapCauses, headline: str) -> str:
    """'hipFree x1360 3346.2 ms, ...': the calls behind a headline cause, under the gaps."""
    members = [c for c, h in HEADLINE.items() if h == headline]
    calls = [t for c in members for t in causes.top_calls(c)]
    calls.sort(key=lambda t: -t[2])
    return ", ".join(f"{n} x{count} {ns / 1e6:.1f} ms" for n, count, ns in calls[:3])


class GpuIdleAnalyzer(PerTraceAnalyzer):
    """The busiest GPU of each trace (see the module docstring)."""

    name: ClassVar[str] = "gpu-idle"
    version: ClassVar[int] = 2
    on_gpu = _analyze_trace
