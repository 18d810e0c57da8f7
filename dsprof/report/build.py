"""Assemble a report from a run folder: the view-model plus the figures, in a fixed order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dsprof.report.figures import (
    FigureSpec,
    cuda_memory_figure,
    fix_trials_figure,
    latency_figure,
    rank_steps_figure,
    timeline_figure,
)
from dsprof.report.fix_view import load_fix_view
from dsprof.report.view_model import ReportView, build_view

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData


@dataclass
class Report:
    """What every renderer gets: the view-model and the figures that have data."""

    view: ReportView
    figures: list[FigureSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run_figures(
    run: RunData, view: ReportView, *, trace: bool = True
) -> tuple[list[FigureSpec], list[str]]:
    """The figures of a run that have data, in page order, and notes on the ones left out."""
    specs: list[FigureSpec] = []
    notes: list[str] = []

    def add(key: str, title: str, fig: object, why_not: str) -> None:
        if fig is None:
            notes.append(f"{title}: {why_not}")
        else:
            specs.append(FigureSpec(key, title, fig))  # type: ignore[arg-type]

    add("timeline", "Timeline", timeline_figure(run), "no steps or samples recorded")
    add(
        "latency",
        "Step latency distribution",
        latency_figure(run.steps, view.steps),
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
    return specs, notes


def build_report(run: RunData, *, trace: bool = True) -> Report:
    """The view-model and figures of one run, ready for html.py, markdown.py or the dashboard."""
    view = build_view(run, load_fix_view(run))
    figures, notes = run_figures(run, view, trace=trace)
    return Report(view=view, figures=figures, notes=notes)
