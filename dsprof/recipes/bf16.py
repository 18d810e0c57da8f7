"""bf16: run the model's outermost calls under bfloat16 autocast (CPU with AMX/AVX512-BF16, or GPU).

Addresses: cpu-fp32-linear, no-tensor-cores, memory-bandwidth-bound, communication-bound
    (bf16 activations halve the bytes a tensor-parallel all-reduce moves).
Change: every outermost call of the model runs inside `torch.autocast(device, torch.bfloat16)`;
    GEMMs and convolutions run in bf16, reductions stay fp32. Written into the script as the
    model's forward wrapped by the same autocast.
Risks: approximate (8-bit mantissa); outputs come back as bfloat16 where the last op ran in bf16
    (`.numpy()` on them fails). Faster only where the hardware has bf16 matmul units: on this
    2-core AMX CPU BERT-base gains with compile, while MiniLM at batch 1 is slower (DESIGN.md).
Verification: cosine and top-1 agreement against the baseline outputs; measured, never assumed.
"""

from __future__ import annotations

from typing import Any, ClassVar

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


class AutocastRecipe(Recipe):
    """Autocast to a lower precision around the model's outermost calls."""

    dtype_name: ClassVar[str] = "bfloat16"
    order = 60

    def device(self, run: Any) -> str:
        return "cuda" if run is not None and uses_cuda(run) else "cpu"

    def applicable(self, run: Any) -> tuple[bool, str]:
        ok, why = super().applicable(run)
        if not ok:
            return ok, why
        current = script_autocast(run).get(self.device(run))
        if current == self.dtype_name:
            return False, f"the script calls its model under {self.dtype_name} autocast already"
        return has_fp32_model(run)

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        import torch

        dtype = getattr(torch, self.dtype_name)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        status["autocast"] = f"{device}/{self.dtype_name}"

        def check(module: Any) -> None:
            on = torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == dtype
            note_change(status, not on, "the script calls the model under this autocast already")

        tracker.first_call_hooks.append(check)
        tracker.call_contexts.append(lambda module: torch.autocast(device, dtype=dtype))
        return no_undo

    def codemod(self, run: Any = None) -> CodeChange:
        device = self.device(run)
        return CodeChange(
            imports=("import torch",),
            model=(
                f'{{model}}.forward = torch.autocast("{device}", dtype=torch.{self.dtype_name})'
                "({model}.forward)",
            ),
        )


class Bf16Recipe(AutocastRecipe):
    """bfloat16 autocast on the CPU or GPU."""

    name = "bf16"
    addresses = (
        "cpu-fp32-linear",
        "no-tensor-cores",
        "memory-bandwidth-bound",
        "communication-bound",
    )
    conflicts = ("fp16", "int8-dynamic", "weight-only-int8")
