"""memory-bandwidth-bound: the GPU's time goes to kernels limited by DRAM bandwidth, not math.

Detects: kernels whose operator sits left of the roofline's ridge point on this GPU, and
    streaming kernels (elementwise, reductions, norms, copies) when shapes were not recorded.
Signal: each kernel is attributed to the aten op that launched it (TraceFrames.kernel_ops);
    the op's FLOPs and bytes come from its input shapes and dtypes (dsprof.trace.roofline);
    arithmetic intensity AI = FLOPs / bytes is compared with the ridge point
    peak FLOP/s (for the op's dtype) / peak bandwidth of the GPU (dsprof.trace.devices, matched
    from deviceProperties). Kernels of ops without a cost are classified by name
    (dsprof.trace.membound.STREAMING_KERNEL_RE). Memory-bound time = union of those kernels in the window.
Thresholds: MEMBOUND_MEDIUM 25 % and MEMBOUND_HIGH 75 % of the window in memory-bound kernels,
    and MEMBOUND_OF_BUSY 50 %: they must also be most of the GPU's busy time (otherwise the GPU is
    idle or compute-bound, and other analyzers speak). Every eager transformer spends a good part
    of its step in norms, activations and copies (the healthy H100 Qwen prefill trace: ~60 %), so
    only three quarters of the window makes it the dominant problem. The ridge point is the roofline model's
    (Williams, Waterman, Patterson, CACM 2009); Nsight Compute's "Memory Workload Analysis"
    section applies the same comparison per kernel.
Evidence: memory-bound share of window and of GPU busy time, achieved vs peak bandwidth of the
    costed memory-bound ops, the ridge point, the GPU row and its source, the top ops.
False positives: GEMMs with small batch (GEMV-like) are memory-bound by nature; there
    weight-only int8 or batching, not fusion, is the fix (both are listed).
References: roofline model (Williams et al. 2009); NVIDIA Nsight Compute Profiling Guide;
    NVIDIA datasheets for the peak table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from dsprof.analyzers.trace_scope import PerTraceAnalyzer, clamp01, severity_for, share_evidence
from dsprof.core.findings import Evidence, Finding
from dsprof.trace.frames import map_names, short_kernel_name
from dsprof.trace.membound import classify, device_spec
from dsprof.trace.roofline import GEMM_OPS

if TYPE_CHECKING:
    from dsprof.trace.frames import TraceFrames

MEMBOUND_MEDIUM = 0.25
MEMBOUND_HIGH = 0.75
MEMBOUND_OF_BUSY = 0.50
EAGER_ATTENTION_OPS = frozenset({"aten::_softmax", "aten::softmax", "aten::bmm", "aten::baddbmm"})


def _analyze_trace(tf: TraceFrames) -> list[Finding]:
    spec = device_spec(tf)
    k = classify(tf, spec)
    if not len(k):
        return []
    mb = k[k["membound"]]
    mb_ns = tf.window_busy_ns(mb)
    busy = tf.window_busy_ns(k)
    share = mb_ns / tf.window_ns
    of_busy = mb_ns / max(busy, 1)
    severity = severity_for(share, MEMBOUND_MEDIUM, MEMBOUND_HIGH)
    if severity is None or of_busy < MEMBOUND_OF_BUSY:
        return []
    w = tf.window_label
    evidence = [
        share_evidence("membound_kernel_share", share, MEMBOUND_MEDIUM, tf),
        Evidence(
            metric="membound_share_of_gpu_busy",
            value=round(of_busy, 4),
            unit="fraction",
            threshold=MEMBOUND_OF_BUSY,
            window=w,
            source="trace",
        ),
    ]
    costed = mb[mb["via"] == "roofline"]
    if spec is not None:
        evidence.append(Evidence(metric="gpu", value=spec.name, source=spec.source))
        evidence.append(
            Evidence(
                metric="peak_bandwidth_gbs", value=spec.mem_bw_gbs, unit="GB/s", source=spec.source
            )
        )
        main_dtype = (
            str(k["dtype"][k["dtype"] != ""].mode().iloc[0])
            if (k["dtype"] != "").any()
            else "float"
        )
        evidence.append(
            Evidence(
                metric="ridge_flops_per_byte",
                value=round(spec.ridge_flops_per_byte(main_dtype), 1),
                unit="FLOP/B",
                source=f"{spec.source} ({main_dtype})",
            )
        )
    if len(costed):
        # bytes per op call are spread over its kernels; count each op once
        per_op = costed.groupby("op_index").agg(bytes=("bytes", "first"), ns=("dur_ns", "sum"))
        achieved = float(per_op["bytes"].sum() / max(per_op["ns"].sum(), 1))  # bytes/ns = GB/s
        evidence.append(
            Evidence(
                metric="achieved_bandwidth_gbs", value=round(achieved, 1), unit="GB/s", window=w
            )
        )
    # by the op that launched the kernels; a kernel no op launched (a trace without CPU ops)
    # by its own short name
    label = mb["op_name"].where(mb["op_name"] != "", map_names(mb["name"], short_kernel_name))
    top = mb["dur_ns"].groupby(label).sum().sort_values(ascending=False).head(3)
    top_text = ", ".join(f"{n} {v / 1e6:.1f} ms" for n, v in top.items())
    evidence.append(Evidence(metric="top_membound_ops", value=top_text, source="trace"))
    recipes = ["fused-kernels", "compile"]
    if (k["dtype"] == "float").any():
        recipes += ["bf16", "fp16"]
    if mb["op_name"].isin(GEMM_OPS).any():
        recipes += ["weight-only-int8", "batching"]
    if mb["op_name"].isin(EAGER_ATTENTION_OPS).sum() >= 2:
        # bmm + softmax + bmm: attention written by hand, which SDPA fuses into one kernel
        recipes.insert(0, "sdpa")
    return [
        Finding(
            category="memory-bandwidth-bound",
            severity=severity,
            title=(
                f"Memory-bound kernels take {share:.0%} of {w} ({of_busy:.0%} of GPU busy time); "
                f"top: {top_text}"
            ),
            impact=clamp01(share),
            evidence=evidence,
            recipes=recipes,
            analyzer=MemoryBandwidthAnalyzer.name,
        )
    ]


class MemoryBandwidthAnalyzer(PerTraceAnalyzer):
    """Roofline classification of each GPU trace's kernels (see the module docstring)."""

    name: ClassVar[str] = "memory-bandwidth-bound"
    on_gpu = _analyze_trace
