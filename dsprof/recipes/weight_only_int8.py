"""weight-only-int8: int8 weights, bf16/fp16 activations, on the GPU with torchao.

Addresses: memory-bandwidth-bound (decode-style GEMVs limited by reading the weights).
Change: at the first call, `torchao.quantization.quantize_(model, Int8WeightOnlyConfig())` in place;
    written as the same call after the model is built.
Risks: approximate (weight rounding); needs torchao and a CUDA GPU; prefill-heavy (compute-bound)
    workloads gain little.
Verification: cosine and top-1 against the baseline outputs. Without a GPU or without torchao the
    recipe says why it does not apply.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from dsprof.recipes.base import CodeChange, Recipe, Undo, has_fp32_model, no_undo


class WeightOnlyInt8Recipe(Recipe):
    """torchao int8 weight-only quantization (CUDA)."""

    name = "weight-only-int8"
    risk = "approximate"
    addresses = ("memory-bandwidth-bound",)
    needs_gpu = True
    order = 21
    conflicts = ("int8-dynamic", "bf16", "fp16")

    def applicable(self, run: Any) -> tuple[bool, str]:
        ok, why = super().applicable(run)
        if not ok:
            return ok, why
        if importlib.util.find_spec("torchao") is None:
            return False, "torchao is not installed (pip install torchao)"
        return has_fp32_model(run)

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        def quantize(module: Any) -> None:
            quantize_(module, Int8WeightOnlyConfig())
            status.setdefault("quantized", []).append(type(module).__name__)

        tracker.first_call_hooks.append(quantize)
        return no_undo

    def codemod(self, run: Any = None) -> CodeChange:
        return CodeChange(
            imports=("from torchao.quantization import Int8WeightOnlyConfig, quantize_",),
            model=("quantize_({model}, Int8WeightOnlyConfig())",),
        )
