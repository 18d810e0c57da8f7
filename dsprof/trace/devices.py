"""Peak FLOP/s and memory bandwidth of common NVIDIA and AMD GPUs, matched from deviceProperties,
NVML or ROCm-SMI names (match_gpu). Which device a trace ran on is dsprof.trace.device_kind.

All matrix-unit rates (NVIDIA tensor cores, AMD matrix cores) are dense (without 2:4 sparsity),
in TFLOP/s; bandwidth in GB/s. fp32 is the vector (non-matrix-unit) rate, which is what an fp32
matmul gets while TF32 is off (PyTorch's default for matmul). None means the GPU has no matrix
path for that type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuSpec:
    """One row of the peak table."""

    name: str
    pattern: str  # regex over the device name (case-insensitive)
    fp32_tflops: float
    tf32_tflops: float | None
    fp16_tflops: float | None  # fp16 tensor cores, fp32 accumulate
    bf16_tflops: float | None
    fp8_tflops: float | None
    mem_bw_gbs: float
    memory_gb: float
    source: str
    compute_capability: tuple[int, int]

    def peak_tflops(self, dtype: str) -> float:
        """Peak for an op computing in dtype ('float', 'c10::BFloat16', 'c10::Half', fp8 names)."""
        d = dtype.lower()
        if "bfloat16" in d:
            return self.bf16_tflops or self.fp32_tflops
        if "half" in d or d == "float16":
            return self.fp16_tflops or self.fp32_tflops
        if "float8" in d:
            return self.fp8_tflops or self.bf16_tflops or self.fp16_tflops or self.fp32_tflops
        return self.fp32_tflops

    def ridge_flops_per_byte(self, dtype: str) -> float:
        """Arithmetic intensity where the roofline turns from bandwidth- to compute-bound."""
        return self.peak_tflops(dtype) * 1e12 / (self.mem_bw_gbs * 1e9)


_DS = "NVIDIA datasheet"
_AMD = "AMD Instinct data sheet"
# Order matters: the first pattern that matches wins (PCIe before the generic name, and so on).
GPU_SPECS: tuple[GpuSpec, ...] = (
    GpuSpec("V100 PCIe", r"V100.*PCIE", 14.0, None, 112.0, None, None, 900, 32,
            f"{_DS}: Tesla V100 (PCIe)", (7, 0)),
    GpuSpec("V100 SXM2", r"V100", 15.7, None, 125.0, None, None, 900, 32,
            f"{_DS}: Tesla V100 (SXM2); DGXS boards use the same V100", (7, 0)),
    GpuSpec("A100 80GB PCIe", r"A100.*80GB.*PCIE|A100 80GB PCIe", 19.5, 156.0, 312.0, 312.0,
            None, 1935, 80, f"{_DS}: A100 80GB PCIe", (8, 0)),
    GpuSpec("A100 80GB SXM", r"A100.*80GB", 19.5, 156.0, 312.0, 312.0, None, 2039, 80,
            f"{_DS}: A100 80GB SXM", (8, 0)),
    GpuSpec("A100 40GB", r"A100", 19.5, 156.0, 312.0, 312.0, None, 1555, 40,
            f"{_DS}: A100 40GB (SXM and PCIe); A100-PG509-200 is a 40 GB sm_80 board", (8, 0)),
    GpuSpec("H100 PCIe", r"H100.*PCIE", 51.0, 378.0, 756.0, 756.0, 1513.0, 2000, 80,
            f"{_DS}: H100 PCIe", (9, 0)),
    GpuSpec("H100 SXM", r"H100", 67.0, 494.7, 989.4, 989.4, 1978.9, 3350, 80,
            f"{_DS}: H100 SXM ('H100 80GB HBM3')", (9, 0)),
    GpuSpec("H200", r"H200", 67.0, 494.7, 989.4, 989.4, 1978.9, 4800, 141,
            f"{_DS}: H200 SXM", (9, 0)),
    GpuSpec("B200", r"B200", 75.0, 1125.0, 2250.0, 2250.0, 4500.0, 8000, 180,
            "NVIDIA HGX B200 specifications (8-GPU totals / 8, sparse rates halved)", (10, 0)),
    GpuSpec("L4", r"\bL4\b", 30.3, 60.0, 121.0, 121.0, 242.0, 300, 24, f"{_DS}: L4", (8, 9)),
    GpuSpec("A10", r"\bA10\b", 31.2, 62.5, 125.0, 125.0, None, 600, 24, f"{_DS}: A10", (8, 6)),
    GpuSpec("RTX 4090", r"RTX 4090", 82.6, 82.6, 165.2, 165.2, 330.3, 1008, 24,
            "NVIDIA Ada Lovelace GPU architecture whitepaper, appendix A (GeForce RTX 4090)",
            (8, 9)),
    GpuSpec("T4", r"\bT4\b", 8.1, None, 65.0, None, None, 320, 16, f"{_DS}: T4", (7, 5)),
    GpuSpec("RTX 2080 Ti", r"2080 Ti", 13.4, None, 53.8, None, None, 616, 11,
            "NVIDIA Turing GPU architecture whitepaper, appendix A (GeForce RTX 2080 Ti)", (7, 5)),
    # AMD Instinct. compute_capability is the gfx target (gfx90a -> (9, 0), gfx942 -> (9, 4),
    # gfx950 -> (9, 5)) as ROCm reports it in deviceProperties computeMajor/Minor. An MI250(X)
    # is two GCDs that PyTorch sees as two devices of 64 GB each: its rows are per GCD, half of
    # the data sheet's per-module numbers.
    GpuSpec("MI210", r"MI210", 22.6, None, 181.0, 181.0, None, 1638, 64,
            f"{_AMD}: MI210 (FP32 vector 22.6, FP16/BF16 matrix 181.0 TFLOP/s, HBM2e 1.6 TB/s)",
            (9, 0)),
    GpuSpec("MI250X (one GCD)", r"MI250X(?!/)", 23.9, None, 191.5, 191.5, None, 1638, 64,
            f"{_AMD}: MI250X (FP32 vector 47.9, FP16/BF16 matrix 383.0 TFLOP/s, 3.2 TB/s per "
            "two-GCD module), halved", (9, 0)),
    GpuSpec("MI250 (one GCD)", r"MI250", 22.6, None, 181.0, 181.0, None, 1638, 64,
            f"{_AMD}: MI250 (FP32 vector 45.3, FP16/BF16 matrix 362.1 TFLOP/s, 3.2 TB/s per "
            "two-GCD module), halved; 'MI250X/MI250' names match here (the lower rates)", (9, 0)),
    GpuSpec("MI300X", r"MI300X|MI300\b", 163.4, 653.7, 1307.4, 1307.4, 2614.9, 5300, 192,
            f"{_AMD}: MI300X (FP32 vector 163.4, TF32 653.7, FP16/BF16 1307.4, FP8 2614.9 "
            "TFLOP/s dense; HBM3 5.3 TB/s)", (9, 4)),
    GpuSpec("MI325X", r"MI325X", 163.4, 653.7, 1307.4, 1307.4, 2614.9, 6000, 256,
            f"{_AMD}: MI325X (compute as MI300X; HBM3E 6 TB/s, 256 GB)", (9, 4)),
    GpuSpec("MI355X", r"MI355X|MI350X", 157.3, None, 2516.6, 2516.6, 5033.2, 8000, 288,
            f"{_AMD}: MI355X (FP32 vector 157.3, FP16/BF16 2.5 PFLOP/s, FP8 5.0 PFLOP/s dense; "
            "HBM3E 8 TB/s); an MI350X (lower clock, FP16 2.3 PFLOP/s) matches here too", (9, 5)),
)  # fmt: skip


def match_gpu(name: str | None, total_memory_bytes: int | None = None) -> GpuSpec | None:
    """The table row for a device name as deviceProperties or NVML spell it, or None.

    total_memory_bytes separates A100 40GB from 80GB when the name does not say.
    """
    if not name:
        return None
    big = total_memory_bytes is not None and total_memory_bytes > 60 * 2**30
    if big and "A100" in name and "80GB" not in name.upper():
        name = f"{name} 80GB"
    for spec in GPU_SPECS:
        if re.search(spec.pattern, name, re.IGNORECASE):
            return spec
    return None
