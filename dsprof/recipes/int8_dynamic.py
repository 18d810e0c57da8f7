"""int8-dynamic: dynamic int8 quantization of Linear (and LSTM) layers on the CPU.

Addresses: cpu-fp32-linear (fp32 GEMMs dominating CPU step time).
Change: at the first call of each root module, `torch.ao.quantization.quantize_dynamic` replaces
    its nn.Linear / nn.LSTM children in place with int8 dynamic-quantized versions (weights
    int8, activations quantized per batch). The script keeps its reference to the model.
    Not tried under an autocast the script already uses (its GEMMs run in bf16 there, and the
    quantized kernels refuse bf16 activations: "expected scalar type Float but found BFloat16").
Risks: approximate. Activation quantization error grows with outliers: BERT-base with random
    weights keeps cosine > 0.99, the trained all-MiniLM-L6-v2 drops to about 0.95 (DESIGN.md),
    which the 0.99 guard refuses. CPU only (the quantized kernels are fbgemm/onednn).
Verification: output drift (cosine, top-1) against the baseline's captured outputs.
"""

from __future__ import annotations

from typing import Any

from dsprof.recipes.base import (
    CodeChange,
    Recipe,
    Undo,
    has_fp32_model,
    no_undo,
    note_change,
    script_autocast,
    uses_cuda,
)


def quantize_in_place(module: Any) -> list[str]:
    """Swap the Linear/LSTM submodules of `module` for int8 dynamic ones; returns their names."""
    import torch
    from torch.ao.quantization import quantize_dynamic

    targets = (torch.nn.Linear, torch.nn.LSTM)
    names = [n for n, m in module.named_modules() if n and isinstance(m, targets)]
    if names:
        quantize_dynamic(module, {torch.nn.Linear, torch.nn.LSTM}, dtype=torch.qint8, inplace=True)
    return names


class Int8DynamicRecipe(Recipe):
    """Dynamic int8 quantization of Linear/LSTM layers (CPU)."""

    name = "int8-dynamic"
    risk = "approximate"
    addresses = ("cpu-fp32-linear",)
    order = 20
    conflicts = ("bf16", "fp16", "weight-only-int8", "fused-kernels")

    def applicable(self, run: Any) -> tuple[bool, str]:
        if uses_cuda(run):
            return False, "dynamic quantized kernels run on the CPU only; this run used CUDA"
        autocast = script_autocast(run)
        if autocast:
            where = ", ".join(f'torch.autocast("{d}", {t})' for d, t in autocast.items())
            return False, (
                f"the script calls its model under {where}: int8 dynamic kernels take float32 "
                "activations, so they are not stacked under an autocast the script uses"
            )
        return has_fp32_model(run)

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        def quantize(module: Any) -> None:
            swapped = quantize_in_place(module)
            status.setdefault("quantized", []).extend(swapped)
            note_change(status, bool(swapped), f"{type(module).__name__} has no Linear/LSTM")

        tracker.first_call_hooks.append(quantize)
        return no_undo

    def codemod(self, run: Any = None) -> CodeChange:
        return CodeChange(
            imports=("import torch",),
            # in place, as the trial did: every reference the script holds (a runner or
            # pipeline built around the model) sees the quantized layers
            model=(
                "torch.ao.quantization.quantize_dynamic("
                "{model}, {torch.nn.Linear, torch.nn.LSTM}, dtype=torch.qint8, inplace=True)",
            ),
        )
