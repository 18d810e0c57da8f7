"""sdpa: switch a transformers model's attention to torch's scaled_dot_product_attention.

Addresses: memory-bandwidth-bound, launch-overhead (eager attention: matmul, softmax, dropout and
    matmul as separate kernels materialising the score matrix).
Change: at the first call, `model.set_attn_implementation("sdpa")` on a transformers model whose
    config says otherwise; written as the same call after the model is built.
Risks: approximate (fused attention kernels sum in another order); models that return attention
    weights (output_attentions=True) fall back to eager.
Verification: cosine and top-1 against the baseline outputs. Where the model is not a
    transformers model, or already uses sdpa, the trial reports that nothing was changed.
"""

from __future__ import annotations

from typing import Any

from dsprof.recipes.base import CodeChange, Recipe, Undo, no_undo, note_change


def switch_to_sdpa(module: Any) -> str:
    """Switch `module` (a transformers PreTrainedModel) to sdpa attention; says what happened."""
    config = getattr(module, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if config is None or not hasattr(module, "set_attn_implementation"):
        return f"{type(module).__name__} is not a transformers model"
    if current == "sdpa":
        return "already sdpa"
    module.set_attn_implementation("sdpa")
    return f"{current} -> sdpa"


class SdpaRecipe(Recipe):
    """scaled_dot_product_attention for transformers models."""

    name = "sdpa"
    risk = "approximate"
    addresses = ("memory-bandwidth-bound", "launch-overhead")
    order = 25

    def applicable(self, run: Any) -> tuple[bool, str]:
        if not run.facts.root_modules:
            return False, "no nn.Module was called as a step"
        return (
            True,
            "applies to transformers models using eager attention (checked at the first call)",
        )

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        def switch(module: Any) -> None:
            what = switch_to_sdpa(module)
            status.setdefault("attention", []).append(what)
            note_change(status, "->" in what, what)

        tracker.first_call_hooks.append(switch)
        return no_undo

    def codemod(self, run: Any = None) -> CodeChange:
        return CodeChange(model=('{model}.set_attn_implementation("sdpa")',))
