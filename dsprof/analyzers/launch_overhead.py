"""launch-overhead: many tiny kernels (GPU) or many tiny ops (CPU) whose fixed cost dominates.

Detects:
    - GPU: kernels that run for less time than the host spends launching them, so the GPU is
      fed slower than it drains;
    - CPU: runs of back-to-back tiny top-level aten ops, where the per-op dispatch overhead of
      eager PyTorch (argument parsing, dispatcher, allocation: a few microseconds each) is the
      work.
Signal:
    - GPU: kernels (collectives excluded) joined to their launching runtime call by correlation
      id; a kernel is tiny when it runs under TINY_KERNEL_NS or shorter than its launch call
      (HTA's "GPU kernels with a shorter duration than the corresponding CPU events"). Impact =
      the larger of (a) the union of the tiny kernels' launch calls and (b) the span of runs of
      tiny kernels on the GPU (gaps <= GPU_RUN_GAP_NS, >= GPU_RUN_MIN_KERNELS kernels), over the
      window.
    - CPU: outermost cpu_ops per thread whose op (by name) has a median duration under
      TINY_CPU_OP_NS (so a preempted call of a tiny op still counts), read-back ops (item,
      select, unbind: host-sync's) excluded, grouped into runs with gaps <= CPU_RUN_GAP_NS;
      runs of at least CPU_RUN_MIN_OPS ops count. Impact = their span over the window.
Thresholds: TINY_KERNEL_NS 10 us (NVIDIA's CUDA Graphs guidance: launch overhead of a few us
    matters for kernels of comparable length); TINY_KERNEL_FRACTION 50 % of kernels tiny;
    LAUNCH_LOW 1 %, LAUNCH_MEDIUM 5 % and LAUNCH_HIGH 15 % of the window at stake (HTA flags
    runtime events over runtime_cutoff = 50 us; at ~5-15 us per launch, 5 % of the window means
    thousands of launches per second). GPU_RUN_GAP_NS 50 us: half HTA's launch_delay_cutoff.
    TINY_CPU_OP_NS 20 us (PyTorch's own dispatch overhead is several us per op, so ops this short
    are mostly overhead); CPU_RUN_GAP_NS 100 us (HTA's launch_delay_cutoff: a longer pause is
    something else than dispatch); CPU_RUN_MIN_OPS 16; CPU_MEDIUM 20 %, CPU_HIGH 40 %.
Evidence: tiny fraction, kernels per step, median kernel and launch durations, launch share; on
    CPU: tiny-op runs' share, ops per step, median op duration.
False positives: profiler overhead inflates tiny CPU ops (numbers are relative to a traced step);
    a model that is genuinely small (batching, not fusion, is then the fix).
References: HTA get_cuda_kernel_launch_stats (runtime_cutoff=50, launch_delay_cutoff=100);
    PyTorch "CUDA Graphs" and torch.compile tutorials (launch overhead reduction).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from dsprof.analyzers.host_sync import READBACK_OPS
from dsprof.analyzers.trace_scope import PerTraceAnalyzer, clamp01, ms, severity_for, share_evidence
from dsprof.core.findings import Evidence, Finding
from dsprof.trace.frames import COMM_KERNEL_RE, match_names
from dsprof.trace.intervals import busy_ns, clip, clusters, covered_ns_each, outermost

if TYPE_CHECKING:
    from dsprof.trace.frames import TraceFrames

TINY_KERNEL_NS = 10_000
TINY_KERNEL_FRACTION = 0.5
GPU_RUN_GAP_NS = 50_000
GPU_RUN_MIN_KERNELS = 16
LAUNCH_LOW = 0.01
LAUNCH_MEDIUM = 0.05
LAUNCH_HIGH = 0.15
TINY_CPU_OP_NS = 20_000
CPU_RUN_GAP_NS = 100_000
CPU_RUN_MIN_OPS = 16
CPU_MEDIUM = 0.20
CPU_HIGH = 0.40
FUSION_LOW = 0.05
FUSION_MEDIUM = 0.25
FUSION_HIGH = 2.0  # never: back-to-back tiny kernels cost their own overhead only (low/medium)
# what fusing back-to-back tiny kernels is expected to save of their run time: per-kernel
# ramp-up/tail and the intermediate tensors' round trips (dsprof's choice: a third)
FUSION_SAVING = 1 / 3


def _gpu_trace(tf: TraceFrames) -> list[Finding]:
    k = tf.in_window(tf.launches)
    k = k[k["launch_dur_ns"].notna() & ~_is_comm(k)]
    if not len(k):
        return []
    tiny = k[(k["dur_ns"] < TINY_KERNEL_NS) | (k["dur_ns"] < k["launch_dur_ns"])]
    fraction = len(tiny) / len(k)
    if fraction < TINY_KERNEL_FRACTION:
        return []
    lo, hi = tf.window
    window = tf.window_ns
    starts = tiny["launch_ts_ns"].to_numpy(dtype=np.int64)
    ends = starts + tiny["launch_dur_ns"].to_numpy(dtype=np.int64)
    launch_share = busy_ns(starts, ends, lo, hi) / window
    idle = tf.idle
    launch_idle = float(idle.by_cause["launch"].sum()) / window if idle is not None else 0.0
    tiny_busy = tf.window_busy_ns(tiny) / window
    # the GPU waits for launches longer than it runs the tiny kernels: launch-bound; else it
    # runs them back to back and only fusing them saves time
    launch_bound = launch_idle if launch_idle >= tiny_busy else 0.0
    cl_s, cl_e, counts = clusters(
        tiny["ts_ns"].to_numpy(), tiny["end_ns"].to_numpy(), GPU_RUN_GAP_NS
    )
    runs = counts >= GPU_RUN_MIN_KERNELS
    cl_s, cl_e = clip(cl_s[runs], cl_e[runs], lo, hi)
    busy = tf.gpu_busy_events
    span = cl_e - cl_s
    idle_in_run = span - covered_ns_each(
        cl_s, cl_e, busy["ts_ns"].to_numpy(), busy["end_ns"].to_numpy()
    )
    # runs the GPU executes back to back (busy most of their span): fusion's, not launches'
    back_to_back = float(span[idle_in_run * 2 < span].sum()) / window
    run_idle = float(idle_in_run.sum()) / window
    severity = severity_for(launch_bound, LAUNCH_MEDIUM, LAUNCH_HIGH, LAUNCH_LOW)
    w = tf.window_label
    per_step = len(k) / max(len(tf.steps), 1)
    evidence = [
        share_evidence("tiny_kernel_fraction", fraction, TINY_KERNEL_FRACTION, tf),
        share_evidence("launch_idle_share", launch_idle, LAUNCH_MEDIUM, tf),
        share_evidence("tiny_kernel_busy_share", tiny_busy, LAUNCH_MEDIUM, tf),
        share_evidence("back_to_back_tiny_run_share", back_to_back, FUSION_LOW, tf),
        share_evidence("gpu_idle_in_tiny_runs_share", run_idle, LAUNCH_MEDIUM, tf),
        share_evidence("tiny_kernel_launch_share", launch_share, LAUNCH_MEDIUM, tf),
        Evidence(metric="kernels_per_step", value=round(per_step, 1), unit="count", window=w),
        Evidence(
            metric="median_kernel_us",
            value=round(float(k["dur_ns"].median()) / 1e3, 2),
            unit="us",
            threshold=TINY_KERNEL_NS / 1e3,
            window=w,
        ),
        Evidence(
            metric="median_launch_us",
            value=round(float(k["launch_dur_ns"].median()) / 1e3, 2),
            unit="us",
            window=w,
        ),
    ]
    head = f"{fraction:.0%} of {len(k)} kernels are tiny (< {TINY_KERNEL_NS // 1000} us or shorter than their launch)"
    if severity is not None:
        return [
            Finding(
                category="launch-overhead",
                severity=severity,
                title=f"{head}; the GPU waits for launches {launch_bound:.0%} of {w}",
                impact=clamp01(launch_bound),
                evidence=evidence,
                recipes=["cuda-graphs", "compile", "fused-kernels"],
                analyzer=LaunchOverheadAnalyzer.name,
            )
        ]
    severity = severity_for(back_to_back, FUSION_MEDIUM, FUSION_HIGH, FUSION_LOW)
    if severity is None:
        return []
    return [
        Finding(
            category="launch-overhead",
            severity=severity,
            title=(
                f"{head}, run back to back for {back_to_back:.0%} of {w}: a fusion "
                "opportunity (the GPU is not waiting for launches)"
            ),
            impact=clamp01(back_to_back * FUSION_SAVING),
            evidence=evidence,
            recipes=["compile", "fused-kernels"],
            analyzer=LaunchOverheadAnalyzer.name,
            detail=(
                "Each tiny kernel reads and writes its tensors and pays its own ramp-up; "
                "fusing neighbours (torch.compile, fused kernels) saves memory traffic and "
                "per-kernel overhead. CUDA graphs would not help: the launches keep up."
            ),
        )
    ]


def _is_comm(k: pd.DataFrame) -> pd.Series:
    return match_names(k["name"], COMM_KERNEL_RE)


def _cpu_trace(tf: TraceFrames) -> list[Finding]:
    ops = tf.in_window(tf.cpu_ops)
    if not len(ops):
        return []
    top = ops[outermost(ops["tid"].to_numpy(), ops["ts_ns"].to_numpy(), ops["end_ns"].to_numpy())]
    # tiny by the op's typical (median) duration, so a call the OS preempted still counts as
    # the tiny op it is; per-element read-back ops are host-sync's, not dispatch overhead
    typical = top.groupby("name", observed=True)["dur_ns"].median()
    tiny_names = set(typical[typical < TINY_CPU_OP_NS].index) - READBACK_OPS
    tiny = top[top["name"].isin(tiny_names)]
    cl_s, cl_e, counts = clusters(
        tiny["ts_ns"].to_numpy(), tiny["end_ns"].to_numpy(), CPU_RUN_GAP_NS
    )
    runs = counts >= CPU_RUN_MIN_OPS
    lo, hi = tf.window
    run_ns = busy_ns(cl_s[runs], cl_e[runs], lo, hi)
    share = run_ns / tf.window_ns
    severity = severity_for(share, CPU_MEDIUM, CPU_HIGH)
    if severity is None:
        return []
    w = tf.window_label
    per_step = len(top) / max(len(tf.steps), 1)
    return [
        Finding(
            category="launch-overhead",
            severity=severity,
            title=(
                f"Runs of tiny CPU ops (< {TINY_CPU_OP_NS // 1000} us each) take {share:.0%} of {w}: "
                f"per-op dispatch overhead ({per_step:.0f} top-level ops per step)"
            ),
            impact=clamp01(share),
            evidence=[
                share_evidence("tiny_op_run_share", share, CPU_MEDIUM, tf),
                Evidence(
                    metric="tiny_op_run_ms", value=ms(run_ns), unit="ms", window=w, source="trace"
                ),
                Evidence(
                    metric="top_level_ops_per_step",
                    value=round(per_step, 1),
                    unit="count",
                    window=w,
                ),
                Evidence(
                    metric="median_top_level_op_us",
                    value=round(float(top["dur_ns"].median()) / 1e3, 2),
                    unit="us",
                    window=w,
                ),
                Evidence(
                    metric="tiny_ops_in_runs", value=int(counts[runs].sum()), unit="count", window=w
                ),
            ],
            # fused-kernels are GPU (Triton) kernels; batching would amortise the dispatch
            # over more rows, but it addresses throughput (small-batch), not this
            recipes=["compile"],
            analyzer=LaunchOverheadAnalyzer.name,
        )
    ]


class LaunchOverheadAnalyzer(PerTraceAnalyzer):
    """Tiny kernels on GPU traces; tiny-op runs on CPU-only traces (see the module docstring)."""

    name: ClassVar[str] = "launch-overhead"
    on_gpu = _gpu_trace
    on_cpu = _cpu_trace
