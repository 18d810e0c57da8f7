"""Bias add followed by GELU, fused: the epilogue of a Linear computed without its bias.

Eager `F.gelu(x + bias)` runs two kernels and moves the activation four times (read x, write the
sum, read it back, write y); the fused kernel reads x once and writes y once.

    y = gelu(x + bias)        bias broadcast over the last dimension

Inside nn.Linear, eager PyTorch usually folds the bias into the GEMM (addmm), so replacing
Linear + GELU by `mm` + this kernel moves as many bytes as addmm + GELU does; bench/kernels.py
measures the kernel and the module swap separately so the recipe's claim rests on a number.
Computed in fp32 for every input dtype; the output has x's dtype.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from dsprof.kernels import runtime
from dsprof.kernels.layernorm_gelu import GELU_APPROXIMATIONS

# triton.language and dsprof.kernels.device_functions, bound by runtime.launch before the first
# launch (see runtime's docstring); importing this module never imports triton.
tl: Any = None
dev: Any = None

# Tile of BLOCK_M rows x BLOCK_N columns per program: 4096 elements keep 4 warps busy with 32
# elements per thread (vectorised 16-byte accesses for fp16/bf16), and the bias slice is loaded
# once per tile instead of once per element.
TILE_ELEMENTS = 4096
MAX_BLOCK_N = 1024
TILE_WARPS = 4


def bias_gelu(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    backend: str = "auto",
    *,
    approximate: str = "none",
) -> torch.Tensor:
    """gelu(x + bias), bias broadcast over x's last dimension; bias may be None.

    `approximate` is nn.GELU's ("none" or "tanh"); `backend` is "auto", "triton" or "torch".
    """
    n = x.shape[-1]
    runtime.check_vector("bias", bias, n, x)
    if approximate not in GELU_APPROXIMATIONS:
        raise ValueError(f"approximate must be one of {GELU_APPROXIMATIONS}, not {approximate!r}")
    if runtime.resolve_backend(backend, x, bias) == "torch" or x.numel() == 0:
        return bias_gelu_reference(x, bias, approximate=approximate)
    rows = x.reshape(-1, n).contiguous()
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    m = rows.shape[0]
    block_n = min(runtime.next_power_of_2(n), MAX_BLOCK_N)
    block_m = max(TILE_ELEMENTS // block_n, 1)
    runtime.launch(
        _bias_gelu_kernel,
        (-(-m // block_m), -(-n // block_n)),
        x.device,
        rows,
        out,
        rows if bias is None else bias,  # never read when HAS_BIAS is False
        m,
        n,
        HAS_BIAS=bias is not None,
        TANH=approximate == "tanh",
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        num_warps=TILE_WARPS,
    )
    return out


def bias_gelu_reference(
    x: torch.Tensor, bias: torch.Tensor | None, *, approximate: str = "none"
) -> torch.Tensor:
    """The same function in plain torch: computed in fp32, returned in x's dtype."""
    summed = x.float() if bias is None else x.float() + bias.float()
    return F.gelu(summed, approximate=approximate).to(x.dtype)


def _bias_gelu_kernel(
    X,
    Y,
    B,
    M,
    N,
    HAS_BIAS: tl.constexpr,
    TANH: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    # Row tiles on grid axis 0 (up to 2**31 - 1 programs), column tiles on axis 1 (up to 65535).
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_mask = cols < N
    mask = (rows < M)[:, None] & col_mask[None, :]
    offsets = rows[:, None] * N + cols[None, :]
    y = tl.load(X + offsets, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        y = y + tl.load(B + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
    y = dev.gelu(y, TANH)
    tl.store(Y + offsets, dev.rounded(y, Y.dtype.element_ty), mask=mask)
