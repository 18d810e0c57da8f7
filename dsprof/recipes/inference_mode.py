"""inference-mode: run the model's calls under torch.inference_mode() (no autograd bookkeeping).

Addresses: autograd-in-inference (steps that ran with grad mode on and parameters requiring grad).
Change: every outermost call of the model runs inside `torch.inference_mode()`; written into the
    script as the model's forward wrapped by it.
Risks: exact; the outputs are inference tensors: code that later calls backward through them,
    or modifies them in place outside inference mode, raises.
Verification: outputs must equal the baseline's (fp32 allclose); speed and memory are measured.
"""

from __future__ import annotations

from typing import Any

from dsprof.recipes.base import CodeChange, Recipe, Undo, no_undo


class InferenceModeRecipe(Recipe):
    """torch.inference_mode() around the model's calls."""

    name = "inference-mode"
    risk = "exact"
    addresses = ("autograd-in-inference",)
    order = 61

    def applicable(self, run: Any) -> tuple[bool, str]:
        info = run.child
        grad_steps, seen = info.autograd_enabled_steps, info.steps_seen
        if grad_steps is None:
            return False, "the run did not record whether autograd was on"
        if grad_steps == 0:
            return False, f"all {seen} steps already ran without autograd"
        return True, f"{grad_steps} of {seen} steps ran with autograd enabled"

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        import torch

        tracker.call_contexts.append(lambda module: torch.inference_mode())
        status["context"] = "torch.inference_mode()"
        return no_undo

    def codemod(self, run: Any = None) -> CodeChange:
        return CodeChange(
            imports=("import torch",),
            model=("{model}.forward = torch.inference_mode()({model}.forward)",),
        )
