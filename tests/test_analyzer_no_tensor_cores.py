"""no-tensor-cores: fp32 SIMT GEMMs on tensor-core GPUs."""

from __future__ import annotations

from pathlib import Path

import pytest
from trace_cache import findings
from trace_synthetic import A100, TraceBuilder, trace_run

from dsprof.analyzers.no_tensor_cores import NoTensorCoresAnalyzer


def _trace(tmp_path: Path, kernel: str, device: dict | None = None) -> Path:
    tb = TraceBuilder()
    if device is not None:
        tb.devices = [device]
    tb.step(1, 0, 1000)
    tb.kernel(kernel, 0, 400, launch_ts=0)
    tb.kernel("void at::native::vectorized_elementwise_kernel<4, float>()", 400, 100, launch_ts=300)
    return tb.write(tmp_path / "t.json")


def test_fp32_sgemm_on_a100(tmp_path: Path) -> None:
    (f,) = NoTensorCoresAnalyzer().analyze(trace_run(_trace(tmp_path, "ampere_sgemm_128x64_nn")))
    assert f.impact == pytest.approx(0.4) and f.severity == "high"
    assert f.recipes == ["tf32", "bf16"]


@pytest.mark.parametrize(
    "kernel",
    [
        "void cutlass::Kernel<cutlass_80_tensorop_s1688gemm_64x64_16x6_nn_align4>(Params)",
        "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64",
        "volta_h884gemm_128x64_nn",
    ],
    ids=["tf32-tensorop", "bf16-xmma", "fp16-h884"],
)
def test_tensor_core_kernels_are_fine(tmp_path: Path, kernel: str) -> None:
    assert NoTensorCoresAnalyzer().analyze(trace_run(_trace(tmp_path, kernel))) == []


def test_volta_gets_fp16_and_pascal_nothing(tmp_path: Path) -> None:
    volta = {**A100, "name": "Tesla V100-SXM2-16GB", "computeMajor": 7}
    (f,) = NoTensorCoresAnalyzer().analyze(
        trace_run(_trace(tmp_path, "volta_sgemm_128x64_nn", volta))
    )
    assert f.recipes == ["fp16"]
    pascal = {**A100, "name": "Tesla P100-PCIE-16GB", "computeMajor": 6}
    assert (
        NoTensorCoresAnalyzer().analyze(
            trace_run(_trace(tmp_path, "maxwell_sgemm_128x64_nn", pascal))
        )
        == []
    )


def test_real_resnet_on_v100() -> None:
    (f,) = [
        f
        for f in findings("kineto/resnet50_num_workers_4").findings
        if f.category == "no-tensor-cores"
    ]
    assert f.severity in ("medium", "high") and f.recipes == ["fp16"]
