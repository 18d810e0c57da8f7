"""no-tensor-cores: fp32 GEMMs and convolutions run on the CUDA cores of a GPU that has tensor cores.

Detects: matrix-multiply and convolution kernels that use the fp32 FFMA (SIMT) path, on GPUs
    whose tensor cores would run them in TF32 (compute capability >= 8.0) or fp16/bf16 (>= 7.0).
    NVIDIA (CUDA) traces only: ROCm reports its gfx target as computeMajor/Minor, and rocBLAS /
    hipBLASLt kernel names do not say whether the matrix cores ran.
Signal: kernel names. GEMM/conv kernels (GEMM_KERNEL_RE) that carry no tensor-core marker
    (TENSOR_CORE_RE: tensorop, s1688/s16816, h884/h1688, hmma, bf16/f16, tf32, ...) and do carry
    an fp32 marker (FP32_SIMT_RE: sgemm, <float, f32f32_f32f32, simt). Their union inside the
    window, over the window, is the time at stake (TF32 runs such GEMMs up to 8x faster on A100).
Thresholds: TC_MEDIUM 10 % and TC_HIGH 30 % of the window in fp32 SIMT GEMM/conv kernels.
    MIN_TENSOR_CORE_CC (7, 0): Volta is the first architecture with tensor cores.
Evidence: fp32 GEMM share and ms, kernel count, the top kernels, the GPU and its compute capability.
False positives: fp32 kept on purpose for accuracy (then bf16/tf32 fail the fix's accuracy guard);
    GEMMs with tiny dimensions that tensor cores would not speed up.
References: NVIDIA "Deep Learning Performance Guide: Matrix Multiplication" (tensor core
    requirements); PyTorch docs "TensorFloat-32 (TF32) on Ampere (and later) devices"
    (torch.backends.cuda.matmul.allow_tf32 defaults to False).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import pandas as pd

from dsprof.analyzers.trace_scope import PerTraceAnalyzer, clamp01, ms, severity_for, share_evidence
from dsprof.core.findings import Evidence, Finding
from dsprof.trace.frames import map_names, short_kernel_name

if TYPE_CHECKING:
    from dsprof.trace.frames import TraceFrames

TC_MEDIUM = 0.10
TC_HIGH = 0.30
MIN_TENSOR_CORE_CC = (7, 0)
TF32_CC = (8, 0)
GEMM_KERNEL_RE = re.compile(r"gemm|gemv|conv|wgrad|dgrad|fprop|winograd|xmma|nvjet|^bmm_", re.I)
NOT_GEMM_RE = re.compile(r"fbgemm|embedding|computeOffsets", re.I)
TENSOR_CORE_RE = re.compile(
    r"tensorop|s1688|s16816|h884|h1688|h16816|i8816|hmma|imma|gmma|bf16|f16|fp16|tf32|e4m3|e2m1|nvjet|"
    r"half|bfloat",
    re.I,
)
FP32_SIMT_RE = re.compile(r"sgemm|<float|_f32f32_f32f32|simt|scudnn", re.I)


def compute_capability(tf: TraceFrames) -> tuple[int, int] | None:
    """computeMajor/Minor of the busiest GPU from deviceProperties."""
    name = tf.device_name()
    for p in tf.device_properties:
        if p.get("name") == name and "computeMajor" in p:
            return int(p["computeMajor"]), int(p.get("computeMinor", 0))
    return None


def fp32_simt_kernels(tf: TraceFrames) -> pd.DataFrame:
    """Kernels in the window that are fp32 GEMM/conv on CUDA cores."""
    k = tf.in_window(tf.kernels)
    cats = k["name"].cat.categories
    hit = {
        c
        for c in cats
        if GEMM_KERNEL_RE.search(str(c))
        and not NOT_GEMM_RE.search(str(c))
        and not TENSOR_CORE_RE.search(str(c))
        and FP32_SIMT_RE.search(str(c))
    }
    return k[k["name"].isin(hit)]


def _analyze_trace(tf: TraceFrames) -> list[Finding]:
    if tf.device.kind != "cuda":
        # computeMajor is a CUDA compute capability only on NVIDIA (ROCm reports its gfx
        # target), and rocBLAS/hipBLASLt kernel names do not say whether matrix cores ran
        return []
    cc = compute_capability(tf)
    if cc is None or cc < MIN_TENSOR_CORE_CC:
        return []
    k = fp32_simt_kernels(tf)
    if not len(k):
        return []
    ns = tf.window_busy_ns(k)
    share = ns / tf.window_ns
    severity = severity_for(share, TC_MEDIUM, TC_HIGH)
    if severity is None:
        return []
    top = (
        k.assign(short=map_names(k["name"], short_kernel_name))
        .groupby("short")["dur_ns"]
        .sum()
        .sort_values(ascending=False)
        .head(3)
    )
    top_text = ", ".join(f"{n} {v / 1e6:.1f} ms" for n, v in top.items())
    recipes = ["tf32", "bf16"] if cc >= TF32_CC else ["fp16"]
    device = tf.device_name() or "the GPU"
    return [
        Finding(
            category="no-tensor-cores",
            severity=severity,
            title=(
                f"fp32 GEMM/conv kernels on CUDA cores take {share:.0%} of {tf.window_label} on "
                f"{device} (sm_{cc[0]}{cc[1]} has tensor cores)"
            ),
            impact=clamp01(share),
            evidence=[
                share_evidence("fp32_simt_gemm_share", share, TC_MEDIUM, tf),
                Evidence(
                    metric="fp32_simt_gemm_ms", value=ms(ns), unit="ms", window=tf.window_label
                ),
                Evidence(
                    metric="fp32_simt_gemm_kernels",
                    value=len(k),
                    unit="count",
                    window=tf.window_label,
                ),
                Evidence(metric="top_kernels", value=top_text, source="trace"),
                Evidence(
                    metric="compute_capability", value=f"{cc[0]}.{cc[1]}", source="deviceProperties"
                ),
            ],
            recipes=recipes,
            analyzer=NoTensorCoresAnalyzer.name,
        )
    ]


class NoTensorCoresAnalyzer(PerTraceAnalyzer):
    """fp32 SIMT GEMM time on tensor-core GPUs (see the module docstring)."""

    name: ClassVar[str] = "no-tensor-cores"
    on_gpu = _analyze_trace
