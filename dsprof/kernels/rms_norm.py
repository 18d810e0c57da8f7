"""RMSNorm (LLaMA, Mistral, Qwen, T5) in one pass over each row.

Written the way LlamaRMSNorm is, eager PyTorch launches a cast, a square, a mean, an rsqrt, two
multiplies and a cast back: the row goes through memory several times. The fused kernel reads
it once and writes it once.

    y = x / sqrt(mean(x**2) + eps) * weight

Statistics and the product are computed in fp32 and rounded once to x's dtype. (LlamaRMSNorm
rounds the normalised row to the input dtype before multiplying by the weight: the results
differ by at most about one unit in the last place of the output dtype.)
"""

from __future__ import annotations

from typing import Any

import torch

from dsprof.kernels import runtime

# triton.language and dsprof.kernels.device_functions, bound by runtime.launch before the first
# launch (see runtime's docstring); importing this module never imports triton.
tl: Any = None
dev: Any = None


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    eps: float = 1e-6,
    backend: str = "auto",
) -> torch.Tensor:
    """RMS-normalise x over its last dimension and scale by weight (which may be None).

    `backend` is "auto", "triton" or "torch" (see dsprof.kernels.runtime).
    """
    n = x.shape[-1]
    runtime.check_vector("weight", weight, n, x)
    if runtime.resolve_backend(backend, x, weight) == "torch" or x.numel() == 0:
        return rms_norm_reference(x, weight, eps)
    rows = runtime.as_rows(x)
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    runtime.launch(
        _rms_norm_kernel,
        (rows.shape[0],),
        x.device,
        rows,
        out,
        rows if weight is None else weight,  # read only when HAS_WEIGHT is True
        rows.stride(0),
        n,
        eps,
        HAS_WEIGHT=weight is not None,
        **runtime.row_launch_params(n),
    )
    return out


def rms_norm_reference(
    x: torch.Tensor, weight: torch.Tensor | None, eps: float = 1e-6
) -> torch.Tensor:
    """The same function in plain torch: computed in fp32, returned in x's dtype."""
    x32 = x.float()
    y = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    if weight is not None:
        y = y * weight.float()
    return y.to(x.dtype)


def _rms_norm_kernel(
    X,
    Y,
    W,
    stride_x_row,
    N,
    eps,
    HAS_WEIGHT: tl.constexpr,
    BLOCK: tl.constexpr,
    NUM_CHUNKS: tl.constexpr,
):
    # One program per row; rows longer than one block take two chunked passes.
    row = tl.program_id(0).to(tl.int64)
    x_row = X + row * stride_x_row
    y_row = Y + row * N
    cols = tl.arange(0, BLOCK)
    if NUM_CHUNKS == 1:
        mask = cols < N
        x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.math.rsqrt(tl.sum(x * x, axis=0) / N + eps)
        y = x * rstd
        if HAS_WEIGHT:
            y = y * tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(y_row + cols, dev.rounded(y, Y.dtype.element_ty), mask=mask)
    else:
        squares = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, N, BLOCK):
            mask = start + cols < N
            x = tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            squares += x * x
        rstd = tl.math.rsqrt(tl.sum(squares, axis=0) / N + eps)
        for start in range(0, N, BLOCK):
            mask = start + cols < N
            x = tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            y = x * rstd
            if HAS_WEIGHT:
                y = y * tl.load(W + start + cols, mask=mask, other=0.0).to(tl.float32)
            tl.store(y_row + start + cols, dev.rounded(y, Y.dtype.element_ty), mask=mask)
