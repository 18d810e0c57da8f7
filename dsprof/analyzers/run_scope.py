"""Notices about what a run measured: no steps, model work in worker processes, sampled outputs.

Not bottlenecks, so not findings: things the reader must know before trusting the findings (or
their absence). An empty findings list of a run without steps means nothing was measured, never
that the script is healthy. Reads run.json, child.json and host.parquet; pure.

Thresholds:
    WORKER_CPU_SHARE   the share of the process tree's CPU time spent outside the script's own
                       process above which, with no steps or with modules called in workers,
                       the work is said to have happened in worker processes
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsprof.core.child import WorkerProcess
from dsprof.core.findings import Notice

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData

WORKER_CPU_SHARE = 0.5

HOW_TO_PROFILE_WORKERS = (
    "dsprof records steps and traces in the script's own process only. To profile the worker "
    "side, wrap the worker's model calls in `with dsprof.profile(out='.dsprof/runs'):` inside "
    "the worker function (one run folder per worker), or run the worker's code as a script "
    "under `dsprof run`"
)


def worker_cpu_share(run: RunData) -> float | None:
    """The share of the tree's CPU time spent in the script's worker processes (None: unknown)."""
    host = run.host
    if host is None or not len(host) or "workers_cpu_ns" not in host or "main_cpu_ns" not in host:
        return None
    workers = float(host["workers_cpu_ns"].max())
    tree = workers + float(host["main_cpu_ns"].max())
    return workers / tree if tree > 0 else None


def _workers_sentence(workers: list[WorkerProcess], share: float | None) -> str:
    parts = []
    if workers:
        classes = sorted({w.module for w in workers})
        parts.append(
            f"{len(workers)} worker process{'es' if len(workers) != 1 else ''} called "
            f"{', '.join(classes[:3])}"
        )
    if share is not None:
        parts.append(f"worker processes used {share:.0%} of the process tree's CPU time")
    return "; ".join(parts)


def run_notices(run: RunData) -> list[Notice]:
    """The notices for one run folder (nothing for bare traces)."""
    if run.manifest is None:
        return []
    child = run.child
    notices: list[Notice] = []
    steps = 0 if run.steps is None else len(run.steps)
    workers = child.worker_processes
    share = worker_cpu_share(run)
    in_workers = bool(workers) or (share is not None and share >= WORKER_CPU_SHARE)
    # a watch samples a process from outside: it records no steps by design (dsprof trace does)
    watch = run.manifest.kind == "watch"
    if steps == 0 and run.manifest.status != "running" and not watch:
        why = (
            "the script called no nn.Module in its own process and did not call dsprof.step()"
            if not child.root_modules
            else "no call of the model completed"
        )
        message = f"No steps were recorded: {why}, so there was nothing to diagnose"
        if in_workers:
            message += f" ({_workers_sentence(workers, share)}). {HOW_TO_PROFILE_WORKERS}."
        else:
            message += "; mark steps with dsprof.step() if the model is not an nn.Module."
        notices.append(Notice(code="run-without-steps", message=message))
    elif workers and share is not None and share >= WORKER_CPU_SHARE:
        notices.append(
            Notice(
                code="model-in-workers",
                message=(
                    f"Much of the work ran in worker processes ({_workers_sentence(workers, share)}): "
                    f"the steps and trace cover the script's own process. {HOW_TO_PROFILE_WORKERS}."
                ),
            )
        )
    model = child.model
    if model is not None and model.failed_calls:
        notices.append(
            Notice(
                code="failed-calls",
                message=(
                    f"{model.failed_calls} call(s) of {model.class_name} raised; the script saw "
                    "their exceptions, and they are not counted as steps."
                ),
            )
        )
    outputs = child.outputs
    if outputs is not None and outputs.sampled:
        sampled = outputs.sampled
        shown = ", ".join(
            f"step {s.step} {s.name} {s.shape} ({s.sampled.get('rows')} of "
            f"{s.sampled.get('rows_of')} rows)"
            for s in sampled[:3]
        )
        notices.append(
            Notice(
                code="outputs-sampled",
                message=(
                    f"{len(sampled)} captured tensor(s) were over the capture budget "
                    f"({outputs.step_bytes_cap} bytes a step, {outputs.run_bytes_cap} a run) and were sampled (every n-th row, with whole-tensor statistics): "
                    f"{shown}. Drift is compared on the kept rows; raise the budget with "
                    "--capture-step-bytes / --capture-run-bytes to keep more."
                ),
            )
        )
    return notices
