"""The analyzer registry: two explicit tuples, run over a run folder or over bare traces.

    analyze_run(run)        every analyzer whose `requires` are present, in two passes: ANALYZERS,
                            then SECOND_PASS, which is given the first pass's findings (a class
                            that yields to another weighs it there; no analyzer calls another);
                            an analyzer that raises is recorded in FindingsDocument.analyzers_failed,
                            the others still run; the traces' notices (TraceFrames.notices) become
                            the document's
    analyze_traces(paths)   Kineto traces recorded anywhere; several files are the ranks of one job

Adding an analyzer: write dsprof/analyzers/<name>.py (contract in dsprof.analyzers.base) and add
an instance to ANALYZERS (or, when it weighs other findings, SECOND_PASS) below.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from dsprof.analyzers.base import Analyzer, SecondPassAnalyzer, has_artifacts
from dsprof.analyzers.run_scope import run_notices
from dsprof.core.errors import DsprofError
from dsprof.core.findings import Finding, FindingsDocument, Notice
from dsprof.store.layout import is_run_folder
from dsprof.trace.files import (
    TRACE_SUFFIXES,
    distinct_traces,
    expand_trace_paths,
    names_a_run,
    trace_targets,
)
from dsprof.trace.workers import TraceWorkers

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
from dsprof.analyzers.notices import trace_notices
from dsprof.analyzers.slo_miss import SloMissAnalyzer
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
    # load runs (requests.parquet, load.json): why a latency SLO failed
    SloMissAnalyzer(),
)

# given the first pass's findings: an exact fault found there (autograd, training mode, threads)
# caps them at low (dsprof.analyzers.cpu_facts.exact_faults)
SECOND_PASS: tuple[SecondPassAnalyzer, ...] = (
    CpuFp32LinearAnalyzer(),
    SmallBatchAnalyzer(),
)

# categories a multi-rank job's own analysis covers across its ranks (rank_communication.py):
# a rank waiting for a straggler shows a large collective share of its own, which is not the
# job's communication cost, so those per-rank findings are not repeated in the job's list
JOB_LEVEL_CATEGORIES = ("communication-bound",)


def analyze_run(run: RunData) -> FindingsDocument:
    """Run every applicable analyzer on one run; findings sorted by impact."""
    findings: list[Finding] = []
    failed: dict[str, str] = {}
    notices: list[Notice] = []
    trace_ok = True
    if run.trace_files:
        try:
            run.traces  # noqa: B018 - parse once up front, so a bad trace is reported once
        except DsprofError as e:
            failed["trace"] = str(e)
            trace_ok = False
            # the unreadable trace counts as absent for analyzers that also use other data
            run.__dict__["traces"] = []
        _add_notices(notices, (n for tf in run.traces for n in tf.notices))
        for tf in run.traces:
            _add_notices(notices, trace_notices(tf))
    _add_notices(notices, run_notices(run))

    def applies(analyzer: Analyzer | SecondPassAnalyzer) -> bool:
        return has_artifacts(run, analyzer.requires) and (
            trace_ok or "trace" not in analyzer.requires
        )

    for analyzer in ANALYZERS:
        if applies(analyzer):
            try:
                findings.extend(analyzer.analyze(run))
            except Exception as e:  # one broken analyzer must not hide the others' findings
                failed[analyzer.name] = f"{type(e).__name__}: {e}"
    first_pass = tuple(findings)
    for second in SECOND_PASS:
        if applies(second):
            try:
                findings.extend(second.analyze(run, first_pass))
            except Exception as e:
                failed[second.name] = f"{type(e).__name__}: {e}"
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
        _add_notices(notices, sub.notices)
    return FindingsDocument(findings=findings, analyzers_failed=failed, notices=notices).sorted()


def _add_notices(notices: list[Notice], more: Iterable[Notice]) -> None:
    """Append the notices not already listed (the same notice from two sources is said once)."""
    for n in more:
        if n not in notices:
            notices.append(n)


def write_findings(
    root: Path, *, ranks: Iterable[int] = (), analyze: bool = True
) -> FindingsDocument:
    """Analyse the finished run folder at root and write its findings.json (and, for a
    multi-rank job, each given rank's own); return the run's document.

    Called after the runner has finished the folder (`dsprof run`, `dsprof fix`, `dsprof load`,
    `dsprof.profile()`): collection never runs the analyzers. analyze=False writes empty
    documents (`dsprof run --no-analyze`). An analysis that fails is recorded in the document
    (analyzers_failed["registry"]), never raised: the run is kept.
    """
    from dsprof.store.documents import write_model
    from dsprof.store.layout import RunPaths
    from dsprof.store.run_store import load_run

    paths = RunPaths(root)
    doc = FindingsDocument()
    if not analyze:
        for r in ranks:
            write_model(paths.rank(r).findings, doc)
    else:
        try:
            run = load_run(root)
            for r in ranks:
                if r in run.ranks:  # the traces parsed here stay cached for the job's analysis
                    write_model(run.ranks[r].paths.findings, analyze_run(run.ranks[r]))
            doc = analyze_run(run)
        except Exception as e:  # a failed analysis must not lose the run
            doc = FindingsDocument(analyzers_failed={"registry": repr(e)})
    write_model(paths.findings, doc)
    return doc


def analyze_traces(paths: list[Path], workers: TraceWorkers | None = None) -> FindingsDocument:
    """Diagnose bare Kineto traces; several files are read as the ranks of one job.

    workers: the same files already being parsed in worker processes (dsprof.trace.workers).
    A trace that cannot be read raises TraceError (naming the file), since there is nothing else
    to analyse.
    """
    from dsprof.store.layout import RunPaths
    from dsprof.store.run_store import RunData

    files = workers.paths if workers is not None else expand_trace_paths([Path(p) for p in paths])
    # raise TraceError here, not inside each analyzer; a file given twice is analysed once
    traces = distinct_traces((workers or TraceWorkers(files)).frames())
    run = RunData(
        paths=RunPaths(files[0].parent), manifest=None, trace_files=[tf.path for tf in traces]
    )
    run.__dict__["traces"] = traces
    return analyze_run(run)


def analyze_targets(
    targets: list[Path], runs_dir: Path | None = None, workers: TraceWorkers | None = None
) -> tuple[FindingsDocument, Path | None]:
    """`dsprof analyze`: one run folder (path or id: findings.json is rewritten) or trace files.

    workers: the trace targets already being parsed (see dsprof.trace.workers).
    Returns the findings and the run folder whose findings.json was written (None for traces).
    """
    from dsprof.store.documents import write_model
    from dsprof.store.layout import RunPaths
    from dsprof.store.run_store import RunStore, load_run

    if workers is None and names_a_run(targets):
        store = RunStore(runs_dir) if runs_dir is not None else RunStore()
        run = load_run(targets[0], store)
        doc = analyze_run(run)
        paths: RunPaths = run.paths
        write_model(paths.findings, doc)
        return doc, paths.root
    if workers is None:
        workers = TraceWorkers(trace_targets(targets))
    return analyze_traces(workers.paths, workers), None


__all__ = [
    "ANALYZERS",
    "SECOND_PASS",
    "TRACE_SUFFIXES",
    "analyze_run",
    "analyze_targets",
    "analyze_traces",
    "expand_trace_paths",
    "is_run_folder",
    "write_findings",
]
