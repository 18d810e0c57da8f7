"""Assemble a report from a run folder: the view-model plus the figures, in a fixed order."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dsprof.report.breakdown import CATEGORY_PART, Breakdown, breakdown_figure, run_breakdown
from dsprof.report.figures import (
    FigureSpec,
    cuda_memory_figure,
    fix_trials_figure,
    latency_figure,
    rank_steps,
    rank_steps_figure,
    timeline_figure,
)
from dsprof.report.fix_view import load_fix_view
from dsprof.report.view_model import ReportView, build_view

if TYPE_CHECKING:
    import pandas as pd

    from dsprof.store.layout import RunPaths
    from dsprof.store.run_store import RunData, RunStore


@dataclass
class Report:
    """What every renderer gets: the view-model and the figures that have data.

    The first figure, when the run has iterations, is the breakdown ("breakdown"): renderers
    place it under the top finding.
    """

    view: ReportView
    root: Path
    figures: list[FigureSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    trace_files: list[str] = field(default_factory=list)  # Kineto traces, relative to the folder
    breakdown: Breakdown | None = None  # behind the "breakdown" figure
    steps: pd.DataFrame | None = None  # the steps table the figures were drawn from

    def figure(self, key: str) -> FigureSpec | None:
        """The figure with that key, if the run has it."""
        return next((f for f in self.figures if f.key == key), None)


def run_figures(
    run: RunData, view: ReportView, *, trace: bool = True
) -> tuple[list[FigureSpec], list[str], Breakdown | None]:
    """The figures of a run that have data, in page order, notes on the ones left out, and the
    iteration breakdown behind the first figure."""
    specs: list[FigureSpec] = []
    notes: list[str] = []

    def add(key: str, title: str, fig: object, why_not: str) -> None:
        if fig is None:
            notes.append(f"{title}: {why_not}")
        else:
            specs.append(FigureSpec(key, title, fig))  # type: ignore[arg-type]

    warmup = run.manifest.warmup_steps if run.manifest is not None else 1
    bd = run_breakdown(run, warmup, trace=trace)
    if bd is not None:
        top = view.findings[0].category if view.findings else None
        highlight = CATEGORY_PART.get(top or "")
        if highlight is not None and bd.share(highlight) is None:
            highlight = None  # the part was not measured (an untraced run): nothing to mark
        add("breakdown", "Where each iteration's time goes", breakdown_figure(bd, highlight), "")
        notes.append(f"Iteration breakdown: {bd.source}")
    from dsprof.report.load_figures import load_figures

    specs.extend(load_figures(run))  # a dsprof load run: its requests next
    add("timeline", "Timeline", timeline_figure(run), "no steps or samples recorded")
    add(
        "latency",
        "Iteration time distribution",
        latency_figure(run.steps, view.steps, rank_steps(run)),
        "no steps recorded",
    )
    if trace:
        from dsprof.report.trace_figures import trace_figures

        trace_specs, trace_notes = trace_figures(run)
        specs.extend(trace_specs)
        notes.extend(trace_notes)
    add(
        "cuda_memory",
        "CUDA memory",
        cuda_memory_figure(run),
        "no CUDA memory samples (CPU run or not collected)",
    )
    if run.ranks:
        add("ranks", "Step times per rank", rank_steps_figure(run), "no per-rank steps")
    if view.fix.available:
        add("fix", "Fix trials", fix_trials_figure(view.fix), "no trial has a speed-up")
    return specs, notes, bd


def build_report(run: RunData, *, trace: bool = True) -> Report:
    """The view-model and figures of one run, ready for html.py, markdown.py or the dashboard."""
    run = with_live_steps(run)
    view = build_view(run, load_fix_view(run))
    figures, notes, breakdown = run_figures(run, view, trace=trace)
    return Report(
        view=view,
        root=run.paths.root,
        figures=figures,
        notes=notes,
        trace_files=trace_names(run),
        breakdown=breakdown,
        steps=run.steps,
    )


def trace_names(run: RunData) -> list[str]:
    """The run's Kineto traces (its own, else each rank's), relative to the run folder."""
    root = run.paths.root
    files = list(run.trace_files) or [
        p for _, r in sorted(run.ranks.items()) for p in r.trace_files
    ]
    return [p.relative_to(root).as_posix() for p in files if p.is_relative_to(root)]


def with_live_steps(run: RunData) -> RunData:
    """While a run is in progress steps.parquet does not exist yet: use the live steps.jsonl."""
    if run.steps is not None:
        return run
    steps = read_live_steps(run.paths)
    if steps is None:
        return run
    import dataclasses

    return dataclasses.replace(run, steps=steps)


def read_live_steps(paths: RunPaths) -> pd.DataFrame | None:
    """The model's steps the child has written to metrics/steps.jsonl so far (None: none yet).

    While the run goes on, the model is the root module with the most step time so far.
    """
    import pandas as pd

    from dsprof.runner.step_table import model_steps
    from dsprof.store.live_steps import read_live_steps as read_rows

    rows = model_steps(read_rows(paths.steps_live))
    return pd.DataFrame(rows) if rows else None


def write_report(
    ref: str | Path | list[str | Path],
    out: Path | None = None,
    *,
    fmt: str = "html",
    cdn: bool = False,
    store: RunStore | None = None,
    base: str | Path | None = None,
) -> tuple[Path | None, str]:
    """`dsprof report`: render a run (path, id or short id) or Kineto trace files as html or md.

    HTML goes to `out`, or report.html in the run folder (beside the first trace for traces);
    markdown goes to `out` when given, else it is returned for printing. `base`: a run to show
    the markdown KPIs against (Δ with the iteration change's interval). Returns (the file
    written or None, the markdown or "").
    """
    from dsprof.core.errors import UsageError
    from dsprof.store.documents import write_text_atomic
    from dsprof.store.run_store import load_run
    from dsprof.trace.files import names_a_run, trace_targets

    if fmt not in ("html", "md"):
        raise UsageError(f"unknown report format {fmt!r}: use html or md")
    refs = [Path(r) for r in ref] if isinstance(ref, list) else [Path(ref)]
    comparison = None
    if names_a_run(refs) or (len(refs) == 1 and not refs[0].exists()):
        run = load_run(refs[0], store)
        report = build_report(run)
        default = run.paths.report_html
        if base is not None:
            from dsprof.report.compare import compare_runs

            comparison = compare_runs(load_run(base, store), run)
    else:
        from dsprof.report.trace_report import build_trace_report, default_out

        if base is not None:
            raise UsageError("--base compares runs; a trace report has none")
        report = build_trace_report(trace_targets(refs))
        default = default_out(trace_targets(refs), fmt)
    if fmt == "md":
        from dsprof.report.markdown import render_markdown

        text = render_markdown(report, comparison)
        if out is None:
            return None, text
        _check_out(out)
        write_text_atomic(out, text)
        _shareable(out)
        return out, ""
    from dsprof.report.html import render_html

    target = out if out is not None else default
    _check_out(target)
    write_text_atomic(target, render_html(report, cdn=cdn, out=out))
    _shareable(target)
    return target, ""


def _shareable(path: Path) -> None:
    """Give a report the permissions of a normally created file (atomic writes make it 0600)."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


def _check_out(out: Path) -> None:
    from dsprof.core.errors import UsageError

    if out.is_dir():
        raise UsageError("the output path is a directory; give a file name", path=out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError("the output file's folder does not exist", path=out)
