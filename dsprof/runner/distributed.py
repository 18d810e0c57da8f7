"""`dsprof run --nproc-per-node N`: a multi-rank job under torchrun, every rank collected.

The parent starts the real launcher, `python -m torch.distributed.run ... -m dsprof.runner.child`,
so every rank is the normal dsprof child; its config names the job folder and the child picks
ranks/<RANK>/ from the environment torchrun sets (resolve_rank_config). This process samples the
whole torchrun tree on this node, each local rank's own process tree, and NVML for every GPU
(each rank's folder also gets the rows of its own GPU), then finishes every local rank as a
single run is finished and writes the job's run.json (world_size, ranks) and findings.

One job folder per job. On one node it is named as single runs are. On several nodes every node
must agree on it: --name is required and the folder is <out>/<name> exactly (for example
--name llm-$SLURM_JOB_ID) on a filesystem all nodes share; node 0 writes the job's run.json and
its node-level samples at the root, node n > 0 writes nodes/<n>/, and each node writes
ranks/<r>/ for its own ranks (see docs/ranks.md).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsprof.collectors.base import Samples
from dsprof.collectors.host import HostCollector
from dsprof.collectors.nvml import NvmlCollector
from dsprof.collectors.sampling import Sampling
from dsprof.core.child import ChildConfig
from dsprof.core.errors import UsageError
from dsprof.core.manifest import RunManifest
from dsprof.runner import finalize
from dsprof.runner.launch import RunRequest, RunResult, child_env, wait_for_child
from dsprof.runner.output import Tee
from dsprof.runner.progress import Progress
from dsprof.runner.rank_samplers import RankHostSamplers, gpu_index_for, gpu_rows_for
from dsprof.runner.target import check_target
from dsprof.store.documents import read_manifest, write_model
from dsprof.store.layout import TORCHRUN_WORKER_LOGS, RunPaths
from dsprof.store.run_store import check_writable_dir, create_run_folder, slugify

# how long the node finishing the job waits for other nodes' ranks to write their final run.json
RANKS_SETTLE_S = 15.0
# torchrun's failure summary: "rank : 1 (local_rank: 1)" then "exitcode : -15 (pid: 123)"
_FAILURE_RE = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank:\s*\d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)")
DEFAULT_MASTER_PORT = 29500
# after torchrun exits, how long its workers get to finish writing (then they are killed): as long
# as torchrun's own shutdown timeout (30 s by default)
WORKERS_EXIT_S = 30.0


@dataclass
class DistributedOptions:
    """torchrun's node and process layout, as `dsprof run` takes it."""

    nproc_per_node: int
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    @property
    def local_ranks(self) -> list[int]:
        """Global ranks on this node: static rendezvous numbers them node by node."""
        first = self.node_rank * self.nproc_per_node
        return list(range(first, first + self.nproc_per_node))

    def check(self, name: str | None) -> None:
        """Raise UsageError for a layout torchrun would refuse or dsprof cannot name."""
        if self.nproc_per_node < 1:
            raise UsageError(f"--nproc-per-node must be at least 1, not {self.nproc_per_node}")
        if self.nnodes < 1:
            raise UsageError(f"--nnodes must be at least 1, not {self.nnodes}")
        if not 0 <= self.node_rank < self.nnodes:
            raise UsageError(f"--node-rank must lie in 0..{self.nnodes - 1}, not {self.node_rank}")
        if self.nnodes > 1 and not name:
            raise UsageError(
                "a multi-node job needs --name (the same on every node, e.g. "
                "--name myjob-$SLURM_JOB_ID): every node writes into <out>/<name>"
            )
        if self.nnodes > 1 and not self.master_addr:
            raise UsageError("a multi-node job needs --master-addr (the host of node 0)")

    def torchrun_argv(self, log_dir: Path) -> list[str]:
        """The launcher's command line; per-rank logs go to log_dir and still show on the console."""
        argv = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc-per-node={self.nproc_per_node}",
            f"--nnodes={self.nnodes}",
            f"--log-dir={log_dir}",
            "--redirects=3",
            "--tee=3",
        ]
        if self.nnodes == 1 and self.master_addr is None and self.master_port is None:
            # a free port chosen by torchrun: two jobs on one machine never collide on 29500
            argv.append("--standalone")
        else:
            argv += [
                "--rdzv-backend=static",
                f"--node-rank={self.node_rank}",
                f"--master-addr={self.master_addr or '127.0.0.1'}",
                f"--master-port={self.master_port or DEFAULT_MASTER_PORT}",
            ]
        return [*argv, "-m", "dsprof.runner.child"]


class RankStopped(KeyboardInterrupt):
    """torchrun stopped this rank (SIGTERM), usually because another rank failed.

    A KeyboardInterrupt, so the child ends the script the way Ctrl-C does and keeps its data.
    """


def _on_sigterm(signum: int, frame: Any) -> None:
    from dsprof.runner import steps

    tracker = steps.TRACKER
    if tracker is None:  # the script has not started: nothing to keep, end as SIGTERM would
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if not tracker.installed:
        return  # the child is already finishing: let it write child.json
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise RankStopped("stopped by torchrun (SIGTERM)")


_COLLECTIVE_LOGS: list[Any] = []  # the rank child's record of its torch.distributed calls


def resolve_rank_config(config: ChildConfig) -> ChildConfig:
    """In a rank's child: point run_dir at ranks/<RANK>/ of the job folder (no-op for one run)."""
    if config.job_dir is None:
        return config
    rank = int(os.environ["RANK"])
    paths = RunPaths(Path(config.job_dir)).rank(rank)
    paths.make_dirs()
    signal.signal(signal.SIGTERM, _on_sigterm)
    from dsprof.runner import collectives

    _COLLECTIVE_LOGS.append(collectives.install(paths.collectives_live))
    return config.model_copy(update={"run_dir": str(paths.root)})


def _prepare_job(req: RunRequest, opts: DistributedOptions) -> tuple[RunPaths, RunPaths]:
    """(job folder, this node's folder): the root on node 0, nodes/<n>/ elsewhere."""
    stem = req.name or (req.target.rsplit(".", 1)[-1] if req.module else Path(req.target).stem)
    if opts.nnodes == 1:
        if req.run_dir is not None:
            check_writable_dir(req.run_dir.parent)
            try:
                req.run_dir.mkdir()
            except FileExistsError:
                raise UsageError("the run folder already exists", path=req.run_dir) from None
            job = RunPaths(req.run_dir)
            job.make_dirs()
        else:
            job = create_run_folder(req.out, stem)
        return job, job
    check_writable_dir(req.out)
    job = RunPaths(req.out / slugify(stem))
    job.root.mkdir(exist_ok=True)  # whichever node comes first creates it
    if opts.node_rank == 0 and job.manifest.is_file():
        raise UsageError(
            "this job folder already holds a run.json: give each job its own --name", path=job.root
        )
    for r in opts.local_ranks:
        if job.rank(r).manifest.is_file():
            raise UsageError(
                f"rank {r} already has a run.json here: give each job its own --name",
                path=job.root,
            )
    node = job if opts.node_rank == 0 else job.node(opts.node_rank)
    node.make_dirs()
    return job, node


def _manifest(req: RunRequest, opts: DistributedOptions, run_id: str, **extra: Any) -> RunManifest:
    from dsprof.runner.launch import new_manifest

    return new_manifest(
        req,
        run_id,
        {
            "nproc_per_node": opts.nproc_per_node,
            "nnodes": opts.nnodes,
            "master_addr": opts.master_addr,
            "master_port": opts.master_port,
        },
        world_size=opts.world_size,
        **extra,
    )


def run_distributed(req: RunRequest, opts: DistributedOptions) -> RunResult:
    """Run the target on every rank under torchrun; return the job folder and its exit code."""
    opts.check(req.name)
    check_target(req.target, req.module)
    job, node = _prepare_job(req, opts)
    job_id = job.root.name
    # node 0's node-level data is the job root's; other nodes keep theirs under nodes/<n>/
    node_manifest = (
        _manifest(req, opts, job_id, ranks=list(range(opts.world_size)))
        if node is job
        else _manifest(req, opts, f"{job_id}/nodes/{opts.node_rank}", ranks=opts.local_ranks)
    )
    write_model(node.manifest, node_manifest)
    rank_manifests = {}
    for r in opts.local_ranks:
        rank_paths = job.rank(r)
        rank_paths.make_dirs()
        rank_manifests[r] = _manifest(
            req,
            opts,
            f"{job_id}/ranks/{r}",
            rank=r,
            local_rank=r - opts.local_ranks[0],
            node_rank=opts.node_rank,
        )
        write_model(rank_paths.manifest, rank_manifests[r])

    # run_dir is set per rank by resolve_rank_config
    env = child_env(req, node, run_dir="", job_dir=str(job.root.resolve()))
    torchrun_logs = node.torchrun_logs_dir
    # torchrun gets its own session: a Ctrl-C reaches it once, forwarded by wait_for_child, and it shuts
    # the workers down gracefully; a second SIGINT straight from the terminal would cut that short
    proc = subprocess.Popen(
        opts.torchrun_argv(torchrun_logs),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    tee = Tee(proc, node.stdout_log, node.stderr_log, echo=req.echo)
    per_rank = RankHostSamplers(proc.pid, req.sample_hz)
    progress = Progress(job.rank(opts.local_ranks[0]).steps_live, enabled=req.progress)
    # the node's sampled collectors on torchrun's whole tree, stopped however this ends
    with Sampling(proc.pid, req.sample_hz) as sampling:
        per_rank.start()
        try:
            interrupted = wait_for_child(proc, progress)
            per_rank.wait_workers(WORKERS_EXIT_S)  # torchrun may be gone before its workers are
            tee.join()
        finally:
            per_rank.stop()
    progress.close()
    node_samples = {s.name: s for s in sampling.samples}

    exit_codes = _torchrun_exit_codes(node.stderr_log)
    _collect_rank_logs(torchrun_logs, job, opts)
    for r, manifest in rank_manifests.items():
        rank_paths = job.rank(r)
        calls = finalize.jsonl_rows(rank_paths.collectives_live)
        finalize.write_parquet(calls, rank_paths.collectives, ("start_ns", "end_ns"))
        finalize.finish_run(
            rank_paths,
            manifest,
            # used only when the rank wrote no child.json: torchrun's word on how it ended
            exit_codes.get(r, proc.returncode),
            interrupted=interrupted,
            samples=_rank_samples(r - opts.local_ranks[0], r, per_rank, node_samples),
        )
    node_result = finalize.finish_run(
        node,
        node_manifest,
        proc.returncode,
        interrupted=interrupted,
        samples=sampling.samples,
        write_manifest=node is not job,  # node 0's is the job's root: finish_job writes it
    )
    from dsprof.runner.job import finish_job

    return finish_job(
        job,
        opts,
        node_result.manifest,
        interrupted=interrupted,
        settle_s=RANKS_SETTLE_S if opts.nnodes > 1 else 0.0,
    )


def _rank_samples(
    local_rank: int, rank: int, per_rank: RankHostSamplers, node: dict[str, Samples]
) -> list[Samples]:
    """A rank's own samples (its processes; its GPU's rows of the node's NVML samples), or why
    each is missing."""
    if rank in per_rank.samplers:
        s = per_rank.samplers[rank]
        host = Samples.of(HostCollector, s.rows, s.errors, s.last_error)
    else:
        host = Samples.absent(HostCollector, per_rank.why_not(rank))
    nvml = node.get(NvmlCollector.name)
    if nvml is None or "samples" not in nvml.status.detail:  # NVML never ran on this node
        return [nvml, host] if nvml is not None else [host]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    index = gpu_index_for(local_rank, visible)
    if index is None:
        why = f"no GPU index for local rank {local_rank} in CUDA_VISIBLE_DEVICES={visible}"
        return [host, Samples.absent(NvmlCollector, why)]
    return [host, Samples.of(NvmlCollector, gpu_rows_for(nvml.rows, index))]


def _torchrun_exit_codes(stderr_log: Path) -> dict[int, int]:
    """Exit codes of failed ranks from torchrun's failure summary (signals as 128 + n)."""
    try:
        text = stderr_log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    out = {}
    for rank, code in _FAILURE_RE.findall(text):
        c = int(code)
        out[int(rank)] = 128 - c if c < 0 else c
    return out


def _collect_rank_logs(torchrun_logs: Path, job: RunPaths, opts: DistributedOptions) -> None:
    """Move torchrun's <log-dir>/<id>/attempt_<k>/<local rank>/std*.log into ranks/<r>/logs/."""
    attempts = sorted(torchrun_logs.glob("*/attempt_*"), key=lambda p: p.stat().st_mtime)
    if not attempts:
        return
    for local, r in enumerate(opts.local_ranks):
        src = attempts[-1] / str(local)
        dst = job.rank(r)
        dst.logs_dir.mkdir(parents=True, exist_ok=True)
        for name, target in zip(
            TORCHRUN_WORKER_LOGS, (dst.stdout_log, dst.stderr_log), strict=True
        ):
            if (src / name).is_file():
                shutil.move(str(src / name), target)
    shutil.rmtree(torchrun_logs, ignore_errors=True)


def read_rank_manifest(job: RunPaths, rank: int) -> RunManifest | None:
    """A rank's run.json, or None when that rank has not written one (yet)."""
    path = job.rank(rank).manifest
    if not path.is_file():
        return None
    return read_manifest(path)
