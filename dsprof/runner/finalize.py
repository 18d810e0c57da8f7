"""Turning what a run left on disk into the finished run folder, whatever way the child ended."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Sequence
from typing import Any

from dsprof.collectors.base import Samples
from dsprof.core.child import ChildInfo
from dsprof.core.errors import DsprofError
from dsprof.core.manifest import (
    CollectorStatus,
    RunManifest,
    RunStatus,
    StepSummary,
    summarize_tables,
)
from dsprof.runner import step_table
from dsprof.store.documents import read_child_info, write_model
from dsprof.store.layout import RunPaths
from dsprof.store.live_steps import read_live_steps

EXIT_INTERRUPTED = 130


def jsonl_rows(path: Any) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; a last line cut off by a killed writer is dropped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def write_parquet(rows: list[dict[str, Any]], path: Any, int_cols: tuple[str, ...] = ()) -> None:
    """Rows to a parquet table (nothing written for no rows: not collected means absent)."""
    import pandas as pd

    if not rows:
        return
    df = pd.DataFrame(rows)
    for c in int_cols:
        if c in df.columns:
            df[c] = df[c].astype("int64")
    df.to_parquet(path, index=False)


def summarize(paths: RunPaths, warmup_steps: int, child: ChildInfo | None = None) -> StepSummary:
    """Key numbers for run.json (dsprof.core.manifest.summarize over the folder's tables), with
    the model and how its steps were found (child.json)."""
    import pandas as pd

    def table(path: Any) -> Any:
        return pd.read_parquet(path) if path.is_file() else None

    steps = table(paths.steps)
    summary = summarize_tables(
        steps, table(paths.host), table(paths.gpu), table(paths.cuda_memory), warmup_steps
    )
    if child is not None:
        summary.step_source = child.step_source
    if steps is not None and "thread_id" in steps and len(steps):
        summary.threads = int(steps["thread_id"].nunique())
    return summary


def finish_run(
    paths: RunPaths,
    manifest: RunManifest,
    returncode: int,
    *,
    interrupted: bool,
    samples: Sequence[Samples],
    write_manifest: bool = True,
) -> Any:
    """Write the parquet tables, the summary and the final run.json (its one write since the start).

    samples: what each sampled collector collected (dsprof.collectors.sampling.Sampling): its rows
    go to its table, its status into run.json's collectors.

    Findings are not the runner's: the caller analyses the finished folder
    (dsprof.analyzers.write_findings). write_manifest=False leaves run.json to a caller that
    completes the manifest itself (a multi-rank job's root: dsprof.runner.job.finish_job).
    """
    from dsprof.runner.launch import RunResult

    child = _child_info(paths)
    model = child.model.index if child is not None and child.model is not None else None
    write_parquet(
        step_table.model_steps(read_live_steps(paths.steps_live), model),
        paths.steps,
        step_table.INT_COLUMNS,
    )
    paths.steps_live.unlink(missing_ok=True)  # steps.parquet holds them now
    write_parquet(jsonl_rows(paths.cuda_memory_live), paths.cuda_memory, ("step", "ts_ns"))
    for s in samples:
        write_parquet(s.rows, getattr(paths, s.table), s.int_columns)

    status, exit_code, error, ended_by = _outcome(returncode, interrupted, child)
    manifest.status = status
    manifest.exit_code = exit_code
    manifest.error = error
    manifest.end_ns = time.time_ns()
    manifest.collectors = _collector_statuses(paths, child, samples)
    if manifest.environment is not None and child is not None:
        manifest.environment.torch = child.torch
        manifest.environment.cuda = child.cuda
        manifest.environment.cudnn = child.cudnn
        manifest.environment.torch_num_threads = child.torch_num_threads
    manifest.summary = summarize(paths, manifest.warmup_steps, child)
    if write_manifest:
        write_model(paths.manifest, manifest)
    return RunResult(paths=paths, manifest=manifest, exit_code=exit_code, signal=ended_by)


def _child_info(paths: RunPaths) -> ChildInfo | None:
    """child.json, or None when the child wrote none (or one that cannot be read)."""
    if not paths.child_info.is_file():
        return None
    try:
        return read_child_info(paths.child_info)
    except DsprofError:  # the run is still finished from what the parent knows
        return None


def _outcome(
    returncode: int, interrupted: bool, child: ChildInfo | None
) -> tuple[RunStatus, int, str | None, int | None]:
    """The run's status, exit code and error, and the signal the script ended by (as python
    would: an uncaught KeyboardInterrupt ends python by SIGINT), or None.

    The script's own outcome wins over our Ctrl-C: a script that catches KeyboardInterrupt and
    exits 0 exits 0 here too (its run is still marked interrupted)."""
    sigint = int(signal.SIGINT)
    if child is not None and child.status == "interrupted":
        return "interrupted", EXIT_INTERRUPTED, "interrupted (SIGINT)", sigint
    if child is not None and child.status is not None:
        code = child.exit_code if child.exit_code is not None else returncode
        return ("interrupted" if interrupted else child.status), code, child.error, None
    if returncode < 0:
        if interrupted and -returncode == sigint:
            return "interrupted", EXIT_INTERRUPTED, "interrupted (SIGINT)", sigint
        name = signal.Signals(-returncode).name
        status: RunStatus = "interrupted" if interrupted else "failed"
        return status, 128 - returncode, f"the script's process was killed by {name}", -returncode
    if interrupted:
        return "interrupted", EXIT_INTERRUPTED, "interrupted (SIGINT)", None
    if child is not None:  # a child.json of facts only (dsprof watch's service)
        code = child.exit_code if child.exit_code is not None else returncode
        return "ok" if code == 0 else "failed", code, child.error, None
    if returncode == 0:
        return "ok", 0, None, None
    return (
        "failed",
        returncode,
        f"the script's process exited with status {returncode} before dsprof could record its end",
        None,
    )


def _collector_statuses(
    paths: RunPaths,
    child: ChildInfo | None,
    samples: Sequence[Samples],
) -> dict[str, CollectorStatus]:
    # sampled collectors report their own status; the child's collectors report through child.json
    out = {s.name: s.status for s in samples}
    prof = child.profiler if child is not None else None
    if child is None or prof is None:
        reason = (
            "--no-trace"
            if child is not None
            else "the child did not report (it was killed before its end)"
        )
        out["torch_profiler"] = CollectorStatus(ok=False, reason=reason)
    elif prof.trace_file:
        out["torch_profiler"] = CollectorStatus(ok=True, detail=prof.model_dump())
    else:
        why = prof.error or (
            f"no trace: the script ran {child.steps_seen} steps; the window needs "
            f"more than {prof.wait} (warm-up) to trace any"
        )
        out["torch_profiler"] = CollectorStatus(ok=False, reason=why, detail=prof.model_dump())
    if child is not None and child.cuda_available:
        out["cuda_memory"] = CollectorStatus(
            ok=paths.cuda_memory.is_file(),
            reason=""
            if paths.cuda_memory.is_file()
            else "the script did not use CUDA during steps",
        )
    else:
        out["cuda_memory"] = CollectorStatus(
            ok=False,
            reason="torch.cuda.is_available() is False (no CUDA GPU or a CPU build of torch)",
        )
    return out
