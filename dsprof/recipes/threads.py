"""threads: use as many intra-op threads as the process has usable cores (no more).

Addresses: cpu-threads (intra-op threads below the usable cores, or oversubscribed).
Change: `torch.set_num_threads(N)` before the script runs, N = the usable cores (CPU affinity);
    written as `torch.set_num_threads(N)` at the top after the imports.
Risks: exact up to reduction order (outputs are compared with fp32 allclose). Too many threads
    on a shared machine oversubscribe it; N is this machine's, so the applied value may not suit
    another one.
Verification: outputs allclose to the baseline's; the speedup is measured.
"""

from __future__ import annotations

import os
from typing import Any

from dsprof.recipes.base import CodeChange, Recipe, Undo, finding_categories


def usable_cpus() -> int:
    """Cores this process may run on (affinity), not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class ThreadsRecipe(Recipe):
    """Intra-op thread count matched to the usable cores."""

    name = "threads"
    risk = "exact"
    addresses = ("cpu-threads",)
    order = 0

    def target(self, run: Any) -> int:
        usable = run.child_info.get("usable_cpus") if run is not None else None
        return max(1, int(usable)) if usable else usable_cpus()

    def applicable(self, run: Any) -> tuple[bool, str]:
        threads = run.child_info.get("torch_num_threads")
        target = self.target(run)
        if "cpu-threads" in finding_categories(run):
            return True, f"cpu-threads finding; {threads} intra-op threads, {target} usable cores"
        if threads is None:
            return False, "the run did not record torch's thread count"
        if threads == target:
            return False, f"already {threads} intra-op threads for {target} usable cores"
        return True, f"{threads} intra-op threads for {target} usable cores"

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        import torch

        before = torch.get_num_threads()
        target = int(options.get("num_threads", usable_cpus()))
        torch.set_num_threads(target)
        status["num_threads"] = {"before": before, "after": target}

        def undo() -> None:
            torch.set_num_threads(before)

        return undo

    def codemod(self, run: Any = None) -> CodeChange:
        return CodeChange(
            imports=("import torch",), top=(f"torch.set_num_threads({self.target(run)})",)
        )
