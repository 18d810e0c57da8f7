"""Triton device functions shared by the kernels: GELU and the rounding to the output dtype.

This module imports triton, so only dsprof.kernels.runtime imports it, after it has settled
whether this process compiles or interprets (see runtime's docstring); the kernel modules reach
it through their `dev` global, which runtime binds on the first launch.
"""

from __future__ import annotations

import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

# Triton's interpreter casts fp32 to bf16 by dropping the low 16 bits (round toward zero), while
# the compiled cast rounds to nearest even; `rounded` corrects for it when interpreting so the
# CPU tests see the GPU's numerics. Fixed when triton is imported, like the mode itself.
INTERPRETED = tl.constexpr(isinstance(tl.sum, InterpretedFunction))


@triton.jit
def gelu(y, TANH: tl.constexpr):
    """GELU of an fp32 block: the exact erf form, or the tanh form when TANH."""
    if TANH:
        # 0.5 * (1 + tanh(u)) == sigmoid(2u); tl.sigmoid exists in every Triton 3 release.
        inner = 0.7978845608028654 * (y + 0.044715 * y * y * y)
        return y * tl.sigmoid(2.0 * inner)
    else:
        return 0.5 * y * (1.0 + tl.math.erf(y * 0.7071067811865476))


@triton.jit
def rounded(y, dtype: tl.constexpr):
    """An fp32 block cast to `dtype`, rounding to nearest even on every backend."""
    if INTERPRETED and dtype == tl.bfloat16:
        # Round the fp32 bits to the nearest bf16 (ties to even) so truncation is exact.
        bits = y.to(tl.uint32, bitcast=True)
        bits += 0x7FFF + ((bits >> 16) & 1)
        y = (bits & 0xFFFF0000).to(tl.float32, bitcast=True)
    return y.to(dtype)
