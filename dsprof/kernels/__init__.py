"""Fused inference kernels: Triton implementations, each with a plain torch reference.

    layernorm_gelu(x, weight, bias, eps=1e-5, backend="auto")       gelu(layer_norm(x))
    bias_gelu(x, bias, backend="auto")                              gelu(x + bias)
    add_layernorm(x, residual, weight, bias, eps=1e-5, backend="auto", return_sum=False)
                                                                    layer_norm(x + residual)
    rms_norm(x, weight, eps=1e-6, backend="auto")                   x * rsqrt(mean(x^2) + eps) * w

All normalise or act over the last dimension, take any leading shape and fp32/fp16/bf16 inputs,
accumulate in fp32, and return x's dtype. backend="auto" runs Triton on CUDA tensors and the
reference elsewhere; "triton" forces the kernel (interpreted on CPU tensors: see
dsprof.kernels.runtime for how the interpreter is chosen); "torch" forces the reference.

`swap_fused_modules(model)` replaces fusable submodules with the drop-in modules of
dsprof.kernels.modules; the fused-kernels recipe of `dsprof fix` calls it.

Importing this package imports torch, never triton.
"""

from __future__ import annotations

from dsprof.kernels.add_layernorm import add_layernorm, add_layernorm_reference
from dsprof.kernels.bias_gelu import bias_gelu, bias_gelu_reference
from dsprof.kernels.layernorm_gelu import layernorm_gelu, layernorm_gelu_reference
from dsprof.kernels.modules import (
    FusedDenseAddLayerNorm,
    FusedLayerNormGELU,
    FusedLinearGELU,
    FusedRMSNorm,
)
from dsprof.kernels.rms_norm import rms_norm, rms_norm_reference
from dsprof.kernels.runtime import KernelUnavailableError, triton_available
from dsprof.kernels.swap import PATTERNS, swap_fused_modules

__all__ = [
    "PATTERNS",
    "FusedDenseAddLayerNorm",
    "FusedLayerNormGELU",
    "FusedLinearGELU",
    "FusedRMSNorm",
    "KernelUnavailableError",
    "add_layernorm",
    "add_layernorm_reference",
    "bias_gelu",
    "bias_gelu_reference",
    "layernorm_gelu",
    "layernorm_gelu_reference",
    "rms_norm",
    "rms_norm_reference",
    "swap_fused_modules",
    "triton_available",
]
