"""fused-kernels: swap in dsprof.kernels' fused Triton modules for common elementwise chains.

Addresses: launch-overhead, memory-bandwidth-bound (LayerNorm+GELU, bias+GELU,
    residual-add+LayerNorm and RMSNorm as separate kernels, each a round trip through memory).
Change: at the first call, `dsprof.kernels.swap_fused_modules(model)` replaces matching submodules
    in place (the kernels engineer's function; it returns what it swapped, recorded in child.json).
    Where torch.compile is unwanted (compile time, dynamic shapes) this fuses the same chains.
Risks: approximate (fused reductions); the swapped modules import dsprof at run time, so `--apply`
    cannot write plain PyTorch for it: the change is printed for the user instead. GPU only: on
    the CPU the modules run their torch reference, the same ops unfused.
Verification: cosine and top-1 against the baseline outputs.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from dsprof.recipes.base import CodeChange, Recipe, Undo, no_undo


class FusedKernelsRecipe(Recipe):
    """dsprof.kernels' fused modules swapped in."""

    name = "fused-kernels"
    risk = "approximate"
    addresses = ("launch-overhead", "memory-bandwidth-bound")
    needs_gpu = True
    order = 30
    conflicts = ("int8-dynamic",)

    def applicable(self, run: Any) -> tuple[bool, str]:
        ok, why = super().applicable(run)
        if not ok:
            return False, why + "; on the CPU the fused modules run their torch reference, unfused"
        if importlib.util.find_spec("triton") is None:
            return False, "the fused kernels are Triton kernels and triton is not installed"
        return True, "Triton fused kernels for LayerNorm/GELU/residual chains"

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        from dsprof.kernels import swap_fused_modules

        patterns = options.get("patterns")

        def swap(module: Any) -> None:
            swapped = swap_fused_modules(module, patterns)
            status.setdefault("swapped", []).extend(swapped)

        tracker.first_call_hooks.append(swap)
        return no_undo

    def codemod(self, run: Any = None) -> CodeChange:
        return CodeChange(
            manual=(
                "the fused modules live in dsprof.kernels: add `from dsprof.kernels import "
                "swap_fused_modules` and call `swap_fused_modules(model)` after building the model "
                "(this keeps a run-time dependency on dsprof, so it is not written automatically)"
            )
        )
