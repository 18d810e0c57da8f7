"""tf32: let fp32 matmuls and convolutions use TF32 tensor cores (Ampere and newer GPUs).

Addresses: no-tensor-cores.
Change: `torch.backends.cuda.matmul.allow_tf32 = True` and `torch.backends.cudnn.allow_tf32 = True`
    before the script runs; written at the top of the script after the imports.
Risks: approximate (10-bit mantissa in the multiply, fp32 accumulate). No effect before Ampere
    and on the CPU.
Verification: cosine and top-1 against the baseline outputs; the flags are restored on undo.
"""

from __future__ import annotations

from typing import Any

from dsprof.recipes.base import CodeChange, Recipe, Undo, has_fp32_model


class Tf32Recipe(Recipe):
    """TF32 for fp32 matmuls and cuDNN convolutions."""

    name = "tf32"
    risk = "approximate"
    addresses = ("no-tensor-cores",)
    needs_gpu = True
    order = 5

    def applicable(self, run: Any) -> tuple[bool, str]:
        ok, why = super().applicable(run)
        return has_fp32_model(run) if ok else (ok, why)

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        import torch

        matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
        before = (matmul.allow_tf32, cudnn.allow_tf32)
        matmul.allow_tf32 = True
        cudnn.allow_tf32 = True
        status["flags"] = {"matmul.allow_tf32": True, "cudnn.allow_tf32": True}

        def undo() -> None:
            matmul.allow_tf32, cudnn.allow_tf32 = before

        return undo

    def codemod(self, run: Any = None) -> CodeChange:
        return CodeChange(
            imports=("import torch",),
            top=(
                "torch.backends.cuda.matmul.allow_tf32 = True",
                "torch.backends.cudnn.allow_tf32 = True",
            ),
        )
