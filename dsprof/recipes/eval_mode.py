"""eval-mode: put the model in eval mode (dropout off, batch-norm on its running statistics).

Addresses: train-mode-in-inference (modules in training mode during inference steps).
Change: `model.eval()` at its first call; written as `model.eval()` after the model is built.
Risks: changes outputs on purpose: in training mode dropout makes them random and batch-norm
    uses the batch's statistics. So it is judged by the outputs becoming deterministic (the same
    inputs give the same outputs), not by closeness to the baseline.
Verification: repeated inputs within the trial give identical outputs; no step in training mode.
"""

from __future__ import annotations

from typing import Any

from dsprof.recipes.base import CodeChange, Recipe, Undo, no_undo, note_change


class EvalModeRecipe(Recipe):
    """model.eval()."""

    name = "eval-mode"
    risk = "deterministic"
    addresses = ("train-mode-in-inference",)
    order = 10

    def applicable(self, run: Any) -> tuple[bool, str]:
        training = run.child.training_modules
        if training is None:
            return False, "the run did not record training-mode modules"
        if not training:
            return False, "no module was in training mode during the steps"
        return True, f"{len(training)} module(s) in training mode, e.g. {training[0]}"

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        def to_eval(module: Any) -> None:
            training = sum(1 for m in module.modules() if m.training)
            note_change(status, training > 0, f"{type(module).__name__} is in eval mode already")
            module.eval()
            status.setdefault("eval", []).append(type(module).__name__)

        tracker.first_call_hooks.append(to_eval)
        return no_undo

    def codemod(self, run: Any = None) -> CodeChange:
        return CodeChange(model=("{model}.eval()",))
