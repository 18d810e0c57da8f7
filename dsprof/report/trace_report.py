"""`dsprof report TRACE...`: a report of Kineto traces someone else recorded (no run folder).

The same page as a run's, from what a trace holds: iterations are its ProfilerStep spans
(profiler.step() to profiler.step()), the breakdown splits them into data wait / host sync /
the rest on the loop's thread and kernel / memcpy / idle on the busiest GPU, the findings are
`dsprof analyze TRACE`'s, and the op, kernel and roofline figures come from the first trace.
Several traces are read as the ranks of one job, as `dsprof analyze` reads them.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dsprof.core.manifest import StepSummary
from dsprof.core.steps import step_stats
from dsprof.report.breakdown import CATEGORY_PART, breakdown_figure, trace_breakdown
from dsprof.report.figures import FigureSpec
from dsprof.report.view_model import (
    CollectorRow,
    FixView,
    ReportView,
    build_kpis,
    finding_views,
    format_ns,
)

if TYPE_CHECKING:
    from dsprof.report.build import Report


def trace_stem(path: Path) -> str:
    """'worker0.123.pt.trace.json.gz' -> 'worker0.123'."""
    name = path.name
    for suffix in (".gz", ".json", ".pt.trace"):
        name = name.removesuffix(suffix)
    return name


def default_out(paths: list[Path], fmt: str) -> Path:
    """Beside the first trace: <its stem>.report.html (or .md)."""
    return paths[0].parent / f"{trace_stem(paths[0])}.report.{'md' if fmt == 'md' else 'html'}"


def build_trace_report(targets: list[Path]) -> Report:
    """The report of bare traces (files, or a directory of them)."""
    from dsprof.analyzers import analyze_run
    from dsprof.report.build import Report
    from dsprof.report.trace_figures import trace_figures
    from dsprof.store.layout import RunPaths
    from dsprof.store.run_store import RunData
    from dsprof.trace.files import expand_trace_paths
    from dsprof.trace.workers import TraceWorkers

    files = expand_trace_paths(targets)
    run = RunData(paths=RunPaths(files[0].parent), manifest=None, trace_files=files)
    run.__dict__["traces"] = TraceWorkers(files).frames()  # a bad trace raises, naming it
    doc = analyze_run(run)
    tf = run.traces[0]
    steps = tf.steps
    durations = steps["dur_ns"].to_numpy(dtype=np.int64) if len(steps) else np.array([], np.int64)
    stats = StepSummary(**step_stats(durations, 0).model_dump(exclude={"steps_measured"}))
    stats.basis = "markers"
    findings = finding_views(doc)
    lo, hi = tf.window
    device = run.facts.device
    view = ReportView(
        run_id=files[0].name if len(files) == 1 else f"{files[0].name} and {len(files) - 1} more",
        title=f"dsprof report: {files[0].name}",
        target=", ".join(str(f) for f in files),
        argv=[],
        status="trace",
        exit_code=None,
        error=None,
        started_utc=_utc(lo) if tf.base_ns else "",
        duration_text=f"{format_ns(hi - lo)} traced ({tf.window_label})",
        parent_run=None,
        recipes=[],
        modules=[],
        environment=[("device", device.label)] + [("trace", str(f)) for f in files],
        collectors=[CollectorRow(name="torch_profiler", ok=True, reason="a recorded trace")],
        kpis=build_kpis(stats) if stats.count else [],
        steps=stats,
        steps_source=f"the trace's ProfilerStep spans ({tf.window_label})" if stats.count else "",
        step_definition=(
            "An iteration is one ProfilerStep span of the trace (profiler.step() to the next); "
            "the model call is not marked in a bare trace, so it is part of 'other'."
            if stats.count
            else ""
        ),
        findings=findings,
        analyzers_failed=sorted(doc.analyzers_failed.items()),
        findings_state="analysed",
        ranks=[],
        fix=FixView(state="a trace has no fix session"),
    )
    figures: list[FigureSpec] = []
    notes: list[str] = []
    bd = trace_breakdown(tf)
    if bd is not None:
        highlight = CATEGORY_PART.get(findings[0].category) if findings else None
        if highlight is not None and bd.share(highlight) is None:
            highlight = None
        title = "Where each iteration's time goes"
        figures.append(FigureSpec("breakdown", title, breakdown_figure(bd, highlight)))
        notes.append(f"Iteration breakdown: {bd.source}")
    else:
        notes.append("Iteration breakdown: the trace has no ProfilerStep spans")
    specs, trace_notes = trace_figures(run)
    return Report(
        view=view,
        root=files[0].parent,
        figures=figures + specs,
        notes=notes + trace_notes,
        trace_files=[Path(os.path.relpath(f, files[0].parent)).as_posix() for f in files],
        breakdown=bd,
    )


def _utc(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
