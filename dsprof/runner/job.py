"""Finishing a multi-rank job folder: each rank's status made plain, the job's run.json, findings.

Runs on every node after its ranks are finished (dsprof.runner.distributed). The job's status and
summary are gathered from ranks/<r>/run.json as found on the shared filesystem, so the node that
finishes last writes the complete picture; a rank whose node has not finished yet is "running".
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from dsprof.core.errors import DsprofError
from dsprof.core.manifest import CollectorStatus, RunManifest, RunStatus
from dsprof.core.steps import StepStats
from dsprof.store.documents import read_child_info, read_manifest, write_model

if TYPE_CHECKING:
    from dsprof.runner.distributed import DistributedOptions
    from dsprof.runner.launch import RunResult
    from dsprof.store.layout import RunPaths

EXIT_INTERRUPTED = 130
# exit statuses of a process ended by torchrun's SIGTERM or its SIGKILL after the shutdown timeout
STOPPED_EXIT_CODES = (128 + 15, 128 + 9)
# collectors that exist per rank only; the job root has none of its own
RANK_ONLY_COLLECTORS = ("torch_profiler", "cuda_memory")
# the step figures a job takes from its slowest rank (dsprof.core.steps)
STEP_FIELDS = tuple(StepStats.model_fields)


def _rank_manifests(job: RunPaths, world_size: int, settle_s: float) -> dict[int, RunManifest]:
    """Every rank's run.json that can be read, waiting up to settle_s for other nodes to finish."""
    deadline = time.monotonic() + settle_s
    while True:
        found: dict[int, RunManifest] = {}
        for r in range(world_size):
            path = job.rank(r).manifest
            if path.is_file():
                try:
                    found[r] = read_manifest(path)
                except DsprofError:
                    continue  # another node is replacing it right now
        settled = len(found) == world_size and all(m.status != "running" for m in found.values())
        if settled or time.monotonic() >= deadline:
            return found
        time.sleep(0.5)


def _stopped(m: RunManifest, interrupted: bool) -> bool:
    """True for a rank that did not fail by itself: torchrun ended it after another rank failed."""
    if interrupted:
        return False
    if m.status == "interrupted":  # the child saw RankStopped (a SIGTERM), not a Ctrl-C
        return True
    return m.status == "failed" and m.exit_code in STOPPED_EXIT_CODES


def _failed_at(job: RunPaths, rank: int, m: RunManifest) -> int:
    """When the rank's script ended (child.json), so that the first failure is named first.

    A rank that crashes takes its peers down with it (gloo: "Connection closed by peer"); they
    fail after it.
    """
    path = job.rank(rank).child_info
    try:
        end_ns = read_child_info(path).end_ns if path.is_file() else None
    except DsprofError:
        end_ns = None
    return end_ns or m.end_ns or 0


def explain_stopped_ranks(
    job: RunPaths, ranks: dict[int, RunManifest], local: list[int], interrupted: bool
) -> list[int]:
    """Rewrite this node's stopped ranks as failed "stopped by torchrun after rank X failed".

    Returns the ranks that failed by themselves (the root causes), the first failure first.
    """
    causes = sorted(
        (r for r, m in ranks.items() if m.status == "failed" and not _stopped(m, False)),
        key=lambda r: _failed_at(job, r, ranks[r]),
    )
    if interrupted:
        return causes
    culprit = ", ".join(f"rank {r}" for r in causes) or "another rank"
    for r in local:
        m = ranks.get(r)
        if m is None or not _stopped(m, interrupted):
            continue
        reported = job.rank(r).child_info.is_file()
        m.status = "failed"
        m.exit_code = m.exit_code if m.exit_code not in (None, 0, EXIT_INTERRUPTED) else 143
        m.error = f"stopped by torchrun after {culprit} failed" + (
            "" if reported else " (it was killed before dsprof could record its end)"
        )
        write_model(job.rank(r).manifest, m)
    return causes


def _job_outcome(
    ranks: dict[int, RunManifest], causes: list[int], world_size: int, interrupted: bool
) -> tuple[RunStatus, int | None, str | None]:
    # a rank another node has not yet rewritten as "stopped by torchrun" still reads interrupted:
    # a rank that failed by itself decides, unless the user pressed Ctrl-C
    if interrupted or (not causes and any(m.status == "interrupted" for m in ranks.values())):
        return "interrupted", EXIT_INTERRUPTED, "interrupted (SIGINT)"
    failed = [r for r, m in sorted(ranks.items()) if m.status == "failed"]
    if failed:
        first = causes[0] if causes else failed[0]
        m = ranks[first]
        others = [r for r in failed if r != first]
        names = ", ".join(map(str, others))
        tail = f"; also failed: rank{'s' if len(others) > 1 else ''} {names}" if others else ""
        return "failed", m.exit_code or 1, f"rank {first}: {m.error}{tail}"
    missing = [r for r in range(world_size) if r not in ranks or ranks[r].status == "running"]
    if missing:
        return "running", None, f"ranks {', '.join(map(str, missing))} have not finished (yet)"
    return "ok", 0, None


def _ranks_collector(ranks: dict[int, RunManifest], world_size: int) -> CollectorStatus:
    detail: dict[str, object] = {
        str(r): ranks[r].status if r in ranks else "missing" for r in range(world_size)
    }
    ok = all(v == "ok" for v in detail.values())
    return CollectorStatus(
        ok=ok,
        reason="" if ok else "not every rank finished cleanly (see detail and ranks/<r>/run.json)",
        detail=detail,
    )


def finish_job(
    job: RunPaths,
    opts: DistributedOptions,
    node: RunManifest,
    *,
    interrupted: bool,
    settle_s: float,
) -> RunResult:
    """Write the job's run.json (status gathered over ranks); return the result. The caller
    analyses the job and this node's ranks (dsprof.analyzers.write_findings).

    `node` is this node's finished manifest: the job's own on node 0 (its data is the root's).
    """
    from dsprof.runner.launch import RunResult

    ranks = _rank_manifests(job, opts.world_size, settle_s)
    causes = explain_stopped_ranks(job, ranks, opts.local_ranks, interrupted)
    status, exit_code, error = _job_outcome(ranks, causes, opts.world_size, interrupted)
    if opts.node_rank == 0:
        root = node
    elif job.manifest.is_file():
        root = read_manifest(job.manifest)
    else:  # node 0 has not written the job's run.json: there is nothing to gather into
        return RunResult(paths=job, manifest=node, exit_code=exit_code or 0)
    root.status = status
    root.exit_code = exit_code
    root.error = error
    root.end_ns = max((m.end_ns or 0 for m in ranks.values()), default=0) or time.time_ns()
    for name in RANK_ONLY_COLLECTORS:
        root.collectors.pop(name, None)
    root.collectors["ranks"] = _ranks_collector(ranks, opts.world_size)
    # the job's own process is torchrun's parent: torch facts come from the ranks' children
    first = next((m for _, m in sorted(ranks.items()) if m.environment), None)
    if root.environment is not None and first is not None and first.environment is not None:
        for f in ("torch", "cuda", "cudnn", "torch_num_threads"):
            if getattr(root.environment, f) is None:
                setattr(root.environment, f, getattr(first.environment, f))
    done = [m for m in ranks.values() if m.summary.p50_ns is not None]
    if done:  # the job runs at the pace of its slowest rank
        slowest = max(done, key=lambda m: m.summary.p50_ns or 0)
        for f in STEP_FIELDS:
            setattr(root.summary, f, getattr(slowest.summary, f))
    write_model(job.manifest, root)
    return RunResult(paths=job, manifest=root, exit_code=exit_code or 0)
