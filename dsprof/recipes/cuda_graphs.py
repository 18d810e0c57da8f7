"""cuda-graphs: capture the model's kernels in CUDA graphs (torch.compile mode="reduce-overhead").

Addresses: launch-overhead, gpu-idle (host launch gaps between many small kernels).
Change: at the first call, `forward` is replaced by `torch.compile(forward, mode="reduce-overhead")`
    which records CUDA graphs and replays them; written as `model.compile(mode="reduce-overhead")`.
Risks: approximate (as compile); static shapes only (new shapes re-record), graph memory pools
    raise peak memory, outputs are overwritten by the next replay unless cloned. GPU only.
Verification: cosine and top-1 against the baseline outputs, peak memory. On a machine without a
    GPU the recipe says why it does not apply.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dsprof.recipes.base import CodeChange, Undo, cpu_reason, uses_cuda
from dsprof.recipes.compile import CompileRecipe


class CudaGraphsRecipe(CompileRecipe):
    """CUDA graphs through torch.compile's reduce-overhead mode."""

    name = "cuda-graphs"
    concurrent_calls = False
    addresses: ClassVar[tuple[str, ...]] = ("launch-overhead", "gpu-idle")
    needs_gpu = True
    conflicts = ("compile",)
    mode = "reduce-overhead"

    def applicable(self, run: Any) -> tuple[bool, str]:
        if not uses_cuda(run):  # CompileRecipe.applicable does not reach Recipe's needs_gpu check
            return False, f"CUDA graphs need a CUDA GPU; this run used none ({cpu_reason(run)})"
        return super().applicable(run)

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        return super().install(tracker, {"freezing": False, **options}, status)

    def codemod(self, run: Any = None) -> CodeChange:
        return CodeChange(
            imports=("import torch",), model=('{model}.compile(mode="reduce-overhead")',)
        )
