"""threads: use as many intra-op threads as the process has usable cores (no more).

Addresses: cpu-threads (intra-op threads below the usable cores, or oversubscribed).
Change: `torch.set_num_threads(N)` before the script runs, N = the usable cores (CPU affinity,
    cgroup quota) less the cores other processes kept busy during the baseline (host.parquet);
    written as `torch.set_num_threads(N)` at the top after the imports.
Risks: exact up to reduction order (outputs are compared with fp32 allclose). Too many threads
    on a shared machine oversubscribe it; N is this machine's at the time of the baseline, so the
    applied value may not suit another machine or another load.
Verification: outputs allclose to the baseline's; the speedup is measured.
"""

from __future__ import annotations

from typing import Any

from dsprof.collectors.cpus import whole_usable_cores
from dsprof.recipes.base import CodeChange, Recipe, Undo, finding_categories, note_change

# other processes using at least half a core count against the cores torch may use: a thread
# waiting at an OpenMP barrier for a descheduled sibling stalls the whole op (measured here:
# BERT 4 layers 73 ms with 1 thread, 310-920 ms with 2 while other jobs loaded the 2 cores)
OTHERS_BUSY_MIN = 0.5


def busy_cores_of_others(run: Any) -> float | None:
    """Cores other processes kept busy during the run (host.parquet), or None when not sampled."""
    host = getattr(run, "host", None)
    if host is None or len(host) == 0 or not {"sys_cpu_pct", "proc_cpu_pct"} <= set(host):
        return None
    logical = (
        run.manifest.environment.cpu_count_logical
        if run.manifest and run.manifest.environment
        else None
    )
    if not logical:
        return None
    total = float(host["sys_cpu_pct"].median()) / 100.0 * logical
    ours = float(host["proc_cpu_pct"].median()) / 100.0
    return max(0.0, total - ours)


class ThreadsRecipe(Recipe):
    """Intra-op thread count matched to the usable cores."""

    name = "threads"
    risk = "exact"
    addresses = ("cpu-threads",)
    order = 0

    def target(self, run: Any) -> int:
        """The run's usable cores (RunFacts: the figure the cpu-threads analyzer judges by),
        less those other processes kept busy (at least one); this machine's without a run."""
        usable = run.facts.usable_cores if run is not None else None
        cores = max(1, int(usable)) if usable else whole_usable_cores()
        others = busy_cores_of_others(run) if run is not None else None
        if others is not None and others >= OTHERS_BUSY_MIN:
            cores = max(1, min(cores, round(cores - others)))
        return cores

    def options(self, run: Any) -> dict[str, Any]:
        return {"num_threads": self.target(run)}

    def applicable(self, run: Any) -> tuple[bool, str]:
        threads = run.facts.torch_threads
        target = self.target(run)
        others = busy_cores_of_others(run)
        load = f" (other processes kept {others:.1f} cores busy)" if others else ""
        if "cpu-threads" in finding_categories(run):
            return True, f"cpu-threads finding; {threads} intra-op threads, target {target}{load}"
        if threads is None:
            return False, "the run did not record torch's thread count"
        if threads == target:
            return False, f"already {threads} intra-op threads for {target} free usable cores{load}"
        return True, f"{threads} intra-op threads for {target} free usable cores{load}"

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        import torch

        before = torch.get_num_threads()
        target = int(options.get("num_threads", whole_usable_cores()))
        torch.set_num_threads(target)
        status["num_threads"] = {"before": before, "after": target}

        def check(module: Any) -> None:
            # the script may set its own count after dsprof's (torch.set_num_threads at its top)
            now = torch.get_num_threads()
            status["num_threads"]["at_first_call"] = now
            if now != target:
                why = f"the script sets its own count: {now} intra-op threads at the first call"
            else:
                why = f"{now} intra-op threads already"
            note_change(status, now == target and target != before, why)

        tracker.first_call_hooks.append(check)

        def undo() -> None:
            torch.set_num_threads(before)

        return undo

    def codemod(self, run: Any = None) -> CodeChange:
        return CodeChange(
            imports=("import torch",), top=(f"torch.set_num_threads({self.target(run)})",)
        )
