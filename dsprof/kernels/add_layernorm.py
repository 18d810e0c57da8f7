"""Residual add followed by LayerNorm, fused: the end of every post-norm transformer sub-layer.

BERT-style blocks compute `LayerNorm(dropout(dense(h)) + residual)`. Eager PyTorch writes the
sum to memory and reads it back for the norm; the fused kernel reads x and the residual once
and writes the normalised row (and, when asked, the sum, for a pre-norm block's next residual).

    s = x + residual          rounded to the sum's dtype, as the unfused add would store it
    y = (s - mean(s)) / sqrt(var(s) + eps) * weight + bias

The sum's dtype is torch's promotion of x's and the residual's (fp16 + fp32 gives fp32, as
eager's add does) and so is the output's. The sum is rounded to it before the norm, so the
returned sum and the output agree with each other and with the unfused composition; statistics
are accumulated in fp32.
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


def add_layernorm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
    backend: str = "auto",
    *,
    return_sum: bool = False,
) -> Any:
    """layer_norm(x + residual) over the last dimension; weight and bias may be None.

    Returns the normalised tensor, or `(normalised, x + residual)` with return_sum=True, both in
    the dtype x + residual has. `residual` must have x's shape; `backend` is "auto", "triton" or
    "torch".
    """
    if residual.shape != x.shape:
        raise ValueError(f"residual has shape {tuple(residual.shape)}, x has {tuple(x.shape)}")
    if residual.device != x.device:
        raise ValueError(f"residual is on {residual.device} but x is on {x.device}")
    n = x.shape[-1]
    runtime.check_vector("weight", weight, n, x)
    runtime.check_vector("bias", bias, n, x)
    if runtime.resolve_backend(backend, x, residual, weight, bias) == "torch" or x.numel() == 0:
        return add_layernorm_reference(x, residual, weight, bias, eps, return_sum=return_sum)
    x_rows = runtime.as_rows(x)
    r_rows = runtime.as_rows(residual)
    dtype = torch.promote_types(x.dtype, residual.dtype)
    out = torch.empty(x.shape, dtype=dtype, device=x.device)
    summed = torch.empty(x.shape, dtype=dtype, device=x.device) if return_sum else out
    runtime.launch(
        _add_layernorm_kernel,
        (x_rows.shape[0],),
        x.device,
        x_rows,
        r_rows,
        out,
        summed,  # written only when STORE_SUM is True
        x_rows if weight is None else weight,  # read only when HAS_WEIGHT is True
        x_rows if bias is None else bias,
        x_rows.stride(0),
        r_rows.stride(0),
        n,
        eps,
        HAS_WEIGHT=weight is not None,
        HAS_BIAS=bias is not None,
        STORE_SUM=return_sum,
        **runtime.row_launch_params(n),
    )
    return (out, summed) if return_sum else out


def add_layernorm_reference(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
    *,
    return_sum: bool = False,
) -> Any:
    """The same function in plain torch: the sum in the promoted dtype, the norm in fp32."""
    summed = x + residual
    weight32 = None if weight is None else weight.float()
    bias32 = None if bias is None else bias.float()
    out = F.layer_norm(summed.float(), (x.shape[-1],), weight32, bias32, eps).to(summed.dtype)
    return (out, summed) if return_sum else out


def _add_layernorm_kernel(
    X,
    R,
    Y,
    S,
    W,
    B,
    stride_x_row,
    stride_r_row,
    N,
    eps,
    HAS_WEIGHT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    STORE_SUM: tl.constexpr,
    BLOCK: tl.constexpr,
    NUM_CHUNKS: tl.constexpr,
):
    # One program per row, as in layernorm_gelu. Long rows take three chunked passes; the sum is
    # recomputed from x and the residual in each pass rather than stored and re-read.
    row = tl.program_id(0).to(tl.int64)
    x_row = X + row * stride_x_row
    r_row = R + row * stride_r_row
    y_row = Y + row * N
    s_row = S + row * N
    cols = tl.arange(0, BLOCK)
    if NUM_CHUNKS == 1:
        mask = cols < N
        s = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
        s += tl.load(r_row + cols, mask=mask, other=0.0).to(tl.float32)
        s = dev.rounded(s, Y.dtype.element_ty)
        if STORE_SUM:
            tl.store(s_row + cols, s, mask=mask)
        s = s.to(tl.float32)
        mean = tl.sum(s, axis=0) / N
        centred = tl.where(mask, s - mean, 0.0)
        rstd = tl.math.rsqrt(tl.sum(centred * centred, axis=0) / N + eps)
        y = centred * rstd
        if HAS_WEIGHT:
            y = y * tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
        if HAS_BIAS:
            y = y + tl.load(B + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(y_row + cols, dev.rounded(y, Y.dtype.element_ty), mask=mask)
    else:
        total = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, N, BLOCK):
            mask = start + cols < N
            s = tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            s += tl.load(r_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            s = dev.rounded(s, Y.dtype.element_ty)
            if STORE_SUM:
                tl.store(s_row + start + cols, s, mask=mask)
            total += s.to(tl.float32)
        mean = tl.sum(total, axis=0) / N
        squares = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, N, BLOCK):
            mask = start + cols < N
            s = tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            s += tl.load(r_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            centred = tl.where(mask, dev.rounded(s, Y.dtype.element_ty).to(tl.float32) - mean, 0.0)
            squares += centred * centred
        rstd = tl.math.rsqrt(tl.sum(squares, axis=0) / N + eps)
        for start in range(0, N, BLOCK):
            mask = start + cols < N
            s = tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            s += tl.load(r_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            y = (dev.rounded(s, Y.dtype.element_ty).to(tl.float32) - mean) * rstd
            if HAS_WEIGHT:
                y = y * tl.load(W + start + cols, mask=mask, other=0.0).to(tl.float32)
            if HAS_BIAS:
                y = y + tl.load(B + start + cols, mask=mask, other=0.0).to(tl.float32)
            tl.store(y_row + start + cols, dev.rounded(y, Y.dtype.element_ty), mask=mask)
