"""LayerNorm followed by GELU over the last dimension, fused into one pass over each row.

Eager PyTorch runs two kernels and moves the activation through memory three times (read for
the norm, write the normalised row, read it again for the GELU) plus the final write. The fused
kernel reads each row once and writes it once, and keeps the normalised value in fp32 between
the norm and the GELU instead of rounding it to the input dtype.

    y = gelu((x - mean(x)) / sqrt(var(x) + eps) * weight + bias)

Statistics are accumulated in fp32 for every input dtype; the output has x's dtype.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from dsprof.kernels import runtime

# triton.language and dsprof.kernels.device_functions, bound by runtime.launch before the first
# launch (see runtime's docstring); importing this module never imports triton.
tl: Any = None
dev: Any = None

GELU_APPROXIMATIONS = ("none", "tanh")


def layernorm_gelu(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
    backend: str = "auto",
    *,
    approximate: str = "none",
) -> torch.Tensor:
    """gelu(layer_norm(x)) over x's last dimension; weight and bias may be None.

    `approximate` is nn.GELU's: "none" for the exact erf form, "tanh" for the tanh form.
    `backend` is "auto", "triton" or "torch" (see dsprof.kernels.runtime).
    """
    n = x.shape[-1]
    runtime.check_vector("weight", weight, n, x)
    runtime.check_vector("bias", bias, n, x)
    if approximate not in GELU_APPROXIMATIONS:
        raise ValueError(f"approximate must be one of {GELU_APPROXIMATIONS}, not {approximate!r}")
    if runtime.resolve_backend(backend, x, weight, bias) == "torch" or x.numel() == 0:
        return layernorm_gelu_reference(x, weight, bias, eps, approximate=approximate)
    rows = runtime.as_rows(x)
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    runtime.launch(
        _layernorm_gelu_kernel,
        (rows.shape[0],),
        x.device,
        rows,
        out,
        rows if weight is None else weight,  # never read when HAS_WEIGHT is False
        rows if bias is None else bias,
        rows.stride(0),
        n,
        eps,
        HAS_WEIGHT=weight is not None,
        HAS_BIAS=bias is not None,
        TANH=approximate == "tanh",
        **runtime.row_launch_params(n),
    )
    return out


def layernorm_gelu_reference(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
    *,
    approximate: str = "none",
) -> torch.Tensor:
    """The same function in plain torch: computed in fp32, returned in x's dtype."""
    weight32 = None if weight is None else weight.float()
    bias32 = None if bias is None else bias.float()
    normed = F.layer_norm(x.float(), (x.shape[-1],), weight32, bias32, eps)
    return F.gelu(normed, approximate=approximate).to(x.dtype)


def _layernorm_gelu_kernel(
    X,
    Y,
    W,
    B,
    stride_x_row,
    N,
    eps,
    HAS_WEIGHT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    TANH: tl.constexpr,
    BLOCK: tl.constexpr,
    NUM_CHUNKS: tl.constexpr,
):
    # One program per row. Rows that fit one block stay in registers (one read, one write);
    # longer rows are read three times in chunks: mean, variance about the mean, output.
    row = tl.program_id(0).to(tl.int64)
    x_row = X + row * stride_x_row
    y_row = Y + row * N
    cols = tl.arange(0, BLOCK)
    if NUM_CHUNKS == 1:
        mask = cols < N
        x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(x, axis=0) / N
        centred = tl.where(mask, x - mean, 0.0)
        rstd = tl.math.rsqrt(tl.sum(centred * centred, axis=0) / N + eps)
        y = centred * rstd
        if HAS_WEIGHT:
            y = y * tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
        if HAS_BIAS:
            y = y + tl.load(B + cols, mask=mask, other=0.0).to(tl.float32)
        y = dev.gelu(y, TANH)
        tl.store(y_row + cols, dev.rounded(y, Y.dtype.element_ty), mask=mask)
    else:
        total = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, N, BLOCK):
            mask = start + cols < N
            total += tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(total, axis=0) / N
        squares = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, N, BLOCK):
            mask = start + cols < N
            x = tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            centred = tl.where(mask, x - mean, 0.0)
            squares += centred * centred
        rstd = tl.math.rsqrt(tl.sum(squares, axis=0) / N + eps)
        for start in range(0, N, BLOCK):
            mask = start + cols < N
            x = tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            y = (x - mean) * rstd
            if HAS_WEIGHT:
                y = y * tl.load(W + start + cols, mask=mask, other=0.0).to(tl.float32)
            if HAS_BIAS:
                y = y + tl.load(B + start + cols, mask=mask, other=0.0).to(tl.float32)
            y = dev.gelu(y, TANH)
            tl.store(y_row + start + cols, dev.rounded(y, Y.dtype.element_ty), mask=mask)
