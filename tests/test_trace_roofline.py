"""Per-op FLOPs/bytes and the GPU peak table."""

from __future__ import annotations

import pytest

from dsprof.trace.devices import GPU_SPECS, match_gpu
from dsprof.trace.roofline import op_cost


@pytest.mark.parametrize(
    ("name", "dims", "types", "concrete", "flops", "nbytes"),
    [
        ("aten::mm", [[4, 8], [8, 16]], ["float", "float"], None, 2 * 4 * 8 * 16, (32 + 128 + 64) * 4),
        ("aten::addmm", [[16], [4, 8], [8, 16]], ["float"] * 3, None, 2 * 4 * 8 * 16, (32 + 128 + 64) * 4),
        ("aten::bmm", [[3, 4, 8], [3, 8, 16]], ["c10::BFloat16"] * 2, None, 2 * 3 * 4 * 8 * 16, (96 + 384 + 192) * 2),
        ("aten::linear", [[2, 3, 8], [16, 8], [16]], ["c10::Half"] * 3, None, 2 * 6 * 8 * 16, (48 + 128 + 96) * 2),
        ("aten::convolution", [[1, 3, 8, 8], [4, 3, 3, 3], []], ["float", "float", ""], ["", "", "", "[2, 2]"],
         2 * 1 * 4 * 16 * 27, (192 + 108 + 64) * 4),
        ("aten::scaled_dot_product_attention", [[1, 2, 4, 8], [1, 2, 6, 8], [1, 2, 6, 8]], ["c10::BFloat16"] * 3,
         None, 2 * 2 * 4 * 6 * 8 * 2, (64 + 96 + 96 + 64) * 2),
        ("aten::_flash_attention_forward", [[1, 4, 2, 8], [1, 6, 2, 8], [1, 6, 2, 8]], ["c10::BFloat16"] * 3,
         None, 2 * 2 * 4 * 6 * 8 * 2, (64 + 96 + 96 + 64) * 2),
        ("aten::add", [[4, 8], [4, 8], []], ["float", "float", "Scalar"], None, 32, (32 + 32 + 32) * 4),
        ("aten::cat", [[[2, 3], [2, 3]], []], ["TensorList", "Scalar"], None, 12, None),
    ],
    ids=["mm", "addmm", "bmm-bf16", "linear-fp16", "conv-stride2", "sdpa", "flash-seq-first", "add", "cat-list"],
)  # fmt: skip
def test_op_cost(
    name: str, dims: list, types: list, concrete: list | None, flops: float, nbytes: int | None
) -> None:
    cost = op_cost(name, dims, types, concrete)
    assert cost is not None
    assert cost[0] == flops
    if nbytes is not None:
        assert cost[1] == nbytes


def test_unknown_ops_and_shapes_have_no_cost() -> None:
    assert op_cost("aten::view", [[4, 8], []], ["float", ""]) is None
    assert op_cost("aten::mm", [[], []], ["", ""]) is None
    assert op_cost("aten::mm", None, None) is None


@pytest.mark.parametrize(
    ("device", "memory", "row"),
    [
        ("Tesla V100-SXM2-32GB", None, "V100 SXM2"),
        ("Tesla V100-DGXS-32GB", None, "V100 SXM2"),
        ("Tesla V100-PCIE-16GB", None, "V100 PCIe"),
        ("NVIDIA A100-SXM4-40GB", None, "A100 40GB"),
        ("NVIDIA A100-SXM4-80GB", None, "A100 80GB SXM"),
        ("NVIDIA A100-PG509-200", 42_000_000_000, "A100 40GB"),
        ("NVIDIA A100-PCIE-40GB", None, "A100 40GB"),
        ("NVIDIA H100 80GB HBM3", None, "H100 SXM"),
        ("NVIDIA H100 PCIe", None, "H100 PCIe"),
        ("NVIDIA H200", None, "H200"),
        ("NVIDIA L4", None, "L4"),
        ("NVIDIA A10", None, "A10"),
        ("NVIDIA GeForce RTX 4090", None, "RTX 4090"),
        ("NVIDIA B200", None, "B200"),
        ("NVIDIA GeForce RTX 2080 Ti", None, "RTX 2080 Ti"),
        ("AMD Instinct MI210", None, "MI210"),
        ("AMD Instinct MI250X", None, "MI250X (one GCD)"),
        ("AMD Instinct MI250X/MI250", None, "MI250 (one GCD)"),
        ("AMD Instinct MI300X", None, "MI300X"),
        ("AMD Instinct MI325X", None, "MI325X"),
        ("AMD Instinct MI355X", None, "MI355X"),
        ("AMD Radeon Graphics", None, None),
        ("Intel Arc", None, None),
    ],
)
def test_match_gpu(device: str, memory: int | None, row: str | None) -> None:
    spec = match_gpu(device, memory)
    assert (spec.name if spec else None) == row


def test_every_row_has_a_source_and_sane_numbers() -> None:
    for spec in GPU_SPECS:
        assert spec.source
        assert spec.mem_bw_gbs > 100 and spec.fp32_tflops > 5
        for tc in (spec.tf32_tflops, spec.fp16_tflops, spec.bf16_tflops, spec.fp8_tflops):
            assert tc is None or tc >= spec.fp32_tflops


def test_ridge_point_by_dtype() -> None:
    h100 = match_gpu("NVIDIA H100 80GB HBM3")
    assert h100 is not None
    assert h100.ridge_flops_per_byte("c10::BFloat16") == pytest.approx(989.4e12 / 3350e9)
    assert h100.ridge_flops_per_byte("float") == pytest.approx(67e12 / 3350e9)
