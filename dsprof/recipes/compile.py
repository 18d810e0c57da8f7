"""compile: torch.compile the model (on the CPU: Inductor's fused C++ kernels, weights frozen).

Addresses: launch-overhead, memory-bandwidth-bound, cpu-fp32-linear, gpu-idle.
Change: at the first call, the model's `forward` is replaced by `torch.compile(forward)` on the
    script's own object, with Inductor's `freezing` on (weights become constants; it only acts
    under no_grad/inference_mode). The forward, not the whole call, is compiled so that the
    profiler's module hooks around the outermost call stay outside the compiled region. Written
    into the script as `torch._inductor.config.freezing = True` at the top and `model.compile()`.
Risks: approximate (fused kernels reorder float arithmetic). Compiling costs seconds to tens of
    seconds (BERT-base about 30 s here) and recompiles on new input shapes: those steps are
    excluded from the statistics, and a script with few steps may never recoup the cost. Needs a
    C++ compiler on the CPU.
Verification: cosine and top-1 against the baseline outputs. In fp32 alone the CPU gain was
    x1.1-1.3; stacked with bf16, x3.6 (DESIGN.md).
"""

from __future__ import annotations

import shutil
from typing import Any, ClassVar

from dsprof.recipes.base import CodeChange, Recipe, Undo, uses_cuda


def cpp_compiler() -> str | None:
    """The C++ compiler Inductor would use on the CPU, if any."""
    return next((c for c in ("g++", "c++", "clang++") if shutil.which(c)), None)


def compile_forward(module: Any, mode: str | None = None) -> None:
    """Replace `module.forward` with its compiled form, in place."""
    import torch

    module.forward = torch.compile(module.forward, mode=mode)


def dynamo_counters() -> dict[str, float]:
    """torch.compile's counters in this process: graphs, graph breaks, compile seconds."""
    from torch._dynamo import utils

    stats: dict[str, int] = dict(utils.counters.get("stats", {}))
    breaks: dict[str, int] = dict(utils.counters.get("graph_break", {}))
    metrics = getattr(utils, "compilation_time_metrics", {})
    return {
        "graphs": float(stats.get("unique_graphs", 0)),
        "graph_breaks": float(sum(breaks.values())),
        "compile_s": round(float(sum(metrics.get("_compile.compile_inner", []))), 3),
    }


class CompileRecipe(Recipe):
    """torch.compile with Inductor."""

    name = "compile"
    risk = "approximate"
    addresses: ClassVar[tuple[str, ...]] = (
        "launch-overhead",
        "memory-bandwidth-bound",
        "cpu-fp32-linear",
        "gpu-idle",
    )
    order = 90
    conflicts = ("cuda-graphs",)
    mode: str | None = None

    def applicable(self, run: Any) -> tuple[bool, str]:
        if not run.facts.root_modules:
            return False, "no nn.Module was called as a step: nothing to compile"
        if not uses_cuda(run) and cpp_compiler() is None:
            return False, "Inductor on the CPU needs a C++ compiler (g++/clang++); none on PATH"
        return True, "Inductor fuses pointwise ops and removes per-op dispatch"

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        import torch._inductor.config as inductor_config

        freezing_before = inductor_config.freezing
        inductor_config.freezing = bool(options.get("freezing", True))
        mode = options.get("mode", self.mode)
        status["mode"] = mode or "default"
        status["freezing"] = inductor_config.freezing

        def compile_root(module: Any) -> None:
            compile_forward(module, mode)
            status.setdefault("compiled", []).append(type(module).__name__)

        tracker.first_call_hooks.append(compile_root)
        # the compiler's own counters, kept current at every step end (child.json is written
        # after the script ends): graphs compiled, graph breaks, seconds spent compiling
        tracker.listeners = [
            *tracker.listeners,
            lambda *_: status.__setitem__("dynamo", dynamo_counters()),
        ]

        def undo() -> None:
            inductor_config.freezing = freezing_before

        return undo

    def codemod(self, run: Any = None) -> CodeChange:
        return CodeChange(
            imports=("import torch", "import torch._inductor.config"),
            top=("torch._inductor.config.freezing = True",),
            model=("{model}.compile()",),
        )
