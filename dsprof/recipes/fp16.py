"""fp16: run the model's outermost calls under float16 autocast on the GPU.

Addresses: no-tensor-cores, memory-bandwidth-bound.
Change: every outermost call runs inside `torch.autocast("cuda", torch.float16)`; written into the
    script as the model's forward wrapped by the same autocast.
Risks: approximate; fp16's narrow range can overflow in attention scores or large activations
    (bf16 is safer where supported). GPU only: fp16 matmuls on the CPU are not faster.
Verification: cosine and top-1 agreement against the baseline outputs. Not measurable on a machine
    without a GPU: there the recipe says why it does not apply.
"""

from __future__ import annotations

from dsprof.recipes.bf16 import AutocastRecipe


class Fp16Recipe(AutocastRecipe):
    """float16 autocast (CUDA)."""

    name = "fp16"
    dtype_name = "float16"
    needs_gpu = True
    addresses = ("no-tensor-cores", "memory-bandwidth-bound")
    conflicts = ("bf16", "int8-dynamic", "weight-only-int8")
