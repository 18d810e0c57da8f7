"""The analyzer registry: an explicit tuple, run over a run folder or over bare traces.

    analyze_run(run)        every analyzer whose `requires` are present; an analyzer that raises
                            is recorded in FindingsDocument.analyzers_failed, the others still run
    analyze_traces(paths)   Kineto traces recorded anywhere; several files are the ranks of one job

Adding an analyzer: write dsprof/analyzers/<name>.py (contract in dsprof.analyzers.base) and add
an instance to ANALYZERS below.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dsprof.analyzers.base import Analyzer, has_artifacts
from dsprof.core.errors import DsprofError, UsageError
from dsprof.core.findings import Finding, FindingsDocument

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData

from dsprof.analyzers.autograd_in_inference import AutogradInInferenceAnalyzer
from dsprof.analyzers.communication_bound import CommunicationBoundAnalyzer
from dsprof.analyzers.cpu_fp32_linear import CpuFp32LinearAnalyzer
from dsprof.analyzers.cpu_threads import CpuThreadsAnalyzer
from dsprof.analyzers.gpu_idle import GpuIdleAnalyzer
from dsprof.analyzers.host_sync import HostSyncAnalyzer
from dsprof.analyzers.idle_sm import IdleSmAnalyzer
from dsprof.analyzers.io_stall import IoStallAnalyzer
from dsprof.analyzers.launch_overhead import LaunchOverheadAnalyzer
from dsprof.analyzers.memory_bandwidth import MemoryBandwidthAnalyzer
from dsprof.analyzers.memory_fragmentation import MemoryFragmentationAnalyzer
from dsprof.analyzers.no_tensor_cores import NoTensorCoresAnalyzer
from dsprof.analyzers.small_batch import SmallBatchAnalyzer
from dsprof.analyzers.straggler import StragglerAnalyzer
from dsprof.analyzers.train_mode_in_inference import TrainModeInInferenceAnalyzer

ANALYZERS: tuple[Analyzer, ...] = (
    GpuIdleAnalyzer(),
    LaunchOverheadAnalyzer(),
    MemoryBandwidthAnalyzer(),
    NoTensorCoresAnalyzer(),
    IdleSmAnalyzer(),
    IoStallAnalyzer(),
    MemoryFragmentationAnalyzer(),
    HostSyncAnalyzer(),
    StragglerAnalyzer(),
    CommunicationBoundAnalyzer(),
    # run-based CPU analyzers (child.json, steps, CPU traces)
    AutogradInInferenceAnalyzer(),
    TrainModeInInferenceAnalyzer(),
    CpuThreadsAnalyzer(),
    CpuFp32LinearAnalyzer(),
    SmallBatchAnalyzer(),
)

# categories a multi-rank job's own analysis covers across its ranks (rank_communication.py):
# a rank waiting for a straggler shows a large collective share of its own, which is not the
# job's communication cost, so those per-rank findings are not repeated in the job's list
JOB_LEVEL_CATEGORIES = ("communication-bound",)

TRACE_SUFFIXES = (".json", ".json.gz")


def analyze_run(run: RunData) -> FindingsDocument:
    """Run every applicable analyzer on one run; findings sorted by impact."""
    findings: list[Finding] = []
    failed: dict[str, str] = {}
    trace_ok = True
    if run.trace_files:
        try:
            run.traces  # noqa: B018 - parse once up front, so a bad trace is reported once
        except DsprofError as e:
            failed["trace"] = str(e)
            trace_ok = False
            # the unreadable trace counts as absent for analyzers that also use other data
            run.__dict__["traces"] = []
    for analyzer in ANALYZERS:
        if not has_artifacts(run, analyzer.requires):
            continue
        if "trace" in analyzer.requires and not trace_ok:
            continue
        try:
            findings.extend(analyzer.analyze(run))
        except Exception as e:  # one broken analyzer must not hide the others' findings
            failed[analyzer.name] = f"{type(e).__name__}: {e}"
    for name, rank_run in sorted(run.ranks.items()):
        # per-rank folders of a multi-rank job are analysed too; their findings name the rank
        if rank_run is run:
            continue
        sub = analyze_run(rank_run)
        for f in sub.findings:
            if len(run.ranks) > 1 and f.category in JOB_LEVEL_CATEGORIES:
                continue  # measured across the ranks above; each rank's own stays in its folder
            if not any(f.category == g.category and f.title == g.title for g in findings):
                findings.append(f.model_copy(update={"title": f"rank {name}: {f.title}"}))
        failed.update({f"rank {name}: {k}": v for k, v in sub.analyzers_failed.items()})
    return FindingsDocument(findings=findings, analyzers_failed=failed).sorted()


def expand_trace_paths(paths: list[Path]) -> list[Path]:
    """Files as given; a directory counts as the trace files directly inside it, sorted."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            inside = sorted(
                q for q in p.iterdir() if q.is_file() and q.name.endswith(TRACE_SUFFIXES)
            )
            if not inside:
                raise UsageError("no .json or .json.gz trace files in this directory", path=p)
            files.extend(inside)
        elif p.is_file():
            files.append(p)
        else:
            raise UsageError("no such trace file or directory", path=p)
    return files


def analyze_traces(paths: list[Path]) -> FindingsDocument:
    """Diagnose bare Kineto traces; several files are read as the ranks of one job.

    A trace that cannot be read raises TraceError (naming the file), since there is nothing else
    to analyse.
    """
    from dsprof.store.layout import RunPaths
    from dsprof.store.run_store import RunData

    files = expand_trace_paths([Path(p) for p in paths])
    run = RunData(paths=RunPaths(files[0].parent), manifest=None, trace_files=files)
    run.traces  # noqa: B018 - raise TraceError here, not inside each analyzer
    return analyze_run(run)


def is_run_folder(path: Path) -> bool:
    """True for a folder with a run.json (a dsprof run), as opposed to trace files."""
    from dsprof.store.layout import MANIFEST

    return path.is_dir() and (path / MANIFEST).is_file()


def analyze_targets(
    targets: list[Path], runs_dir: Path | None = None
) -> tuple[FindingsDocument, Path | None]:
    """`dsprof analyze`: one run folder (path or id: findings.json is rewritten) or trace files.

    Returns the findings and the run folder whose findings.json was written (None for traces).
    """
    from dsprof.store.documents import write_model
    from dsprof.store.layout import RunPaths
    from dsprof.store.run_store import RunStore, is_valid_run_id, load_run

    store = RunStore(runs_dir) if runs_dir is not None else RunStore()
    if len(targets) == 1:
        t = targets[0]
        is_id = not t.exists() and is_valid_run_id(str(t))
        if is_run_folder(t) or is_id or str(t) == "latest":
            run = load_run(t, store)
            doc = analyze_run(run)
            paths: RunPaths = run.paths
            write_model(paths.findings, doc)
            return doc, paths.root
    for t in targets:
        if is_run_folder(t):
            raise UsageError("give one run folder, or trace files; not a mix", path=t)
    return analyze_traces(targets), None


__all__ = [
    "ANALYZERS",
    "analyze_run",
    "analyze_targets",
    "analyze_traces",
    "expand_trace_paths",
    "is_run_folder",
]
