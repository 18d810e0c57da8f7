"""Figures drawn from the Kineto trace (dsprof.trace): op, annotation and kernel time, roofline.

GPU time per operator attributes each kernel to the innermost op around its launch
(TraceFrames.kernel_ops), so aten::linear's GEMM kernels count under aten::addmm or aten::mm.

Host ops nest (aten::linear contains aten::addmm), so summing every op's duration counts time
twice. The op breakdown sums only top-level ops: those that start after every earlier op on their
thread has ended (a running maximum of end times per thread, vectorised). record_function spans
are the user's own regions, shown with their inclusive time; ProfilerStep#N spans are left out
because they are the steps themselves. GPU kernels do not nest on a stream, so they are summed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsprof.core.errors import DsprofError
from dsprof.report.figures import FigureSpec, breakdown_figure

if TYPE_CHECKING:
    import pandas as pd

    from dsprof.store.run_store import RunData

# kernel names are C++ template signatures hundreds of characters long; the label keeps the start
MAX_LABEL_CHARS = 80


def _label(name: str) -> str:
    return name if len(name) <= MAX_LABEL_CHARS else name[: MAX_LABEL_CHARS - 1] + "…"


def _totals(frame: pd.DataFrame, value: str = "dur_ns") -> pd.DataFrame:
    """Total time per name; `name` is shortened for labels (numbered when two shortened names
    collide) and `full` keeps the whole name for the hover text."""
    totals = frame.groupby(frame["name"].astype(str), sort=True, observed=True)[value].sum()
    out = totals.rename_axis("full").reset_index()
    short = out["full"].map(_label)
    nth = short.groupby(short).cumcount()
    out["name"] = short.where(nth == 0, short + " (" + (nth + 1).astype(str) + ")")
    return out


def top_level_ops(cpu_ops: pd.DataFrame) -> pd.DataFrame:
    """Host ops not nested inside another op on the same thread."""
    ops = cpu_ops.sort_values(["tid", "ts_ns", "dur_ns"], ascending=[True, True, False])
    ends = ops["end_ns"].astype("int64")
    # the latest end of any earlier op on this thread; the first op of a thread has none
    prev_end = (
        ends.groupby(ops["tid"], sort=False).cummax().groupby(ops["tid"], sort=False).shift(1)
    )
    return ops[prev_end.isna() | (ops["ts_ns"] >= prev_end)]


def op_breakdown(tf: object) -> pd.DataFrame:
    """Top-level host op time per name, inside the trace's step window."""
    ops = tf.in_window(tf.cpu_ops)  # type: ignore[attr-defined]
    return _totals(top_level_ops(ops)) if len(ops) else ops.iloc[0:0]


def annotation_breakdown(tf: object) -> pd.DataFrame:
    """record_function span time per name (steps and DataLoader iterations left out)."""
    spans = tf.in_window(tf.annotations)  # type: ignore[attr-defined]
    names = spans["name"].astype(str)
    spans = spans[~names.str.startswith("ProfilerStep#")]
    return _totals(spans) if len(spans) else spans.iloc[0:0]


def kernel_breakdown(tf: object) -> pd.DataFrame:
    """GPU kernel time per name inside the step window."""
    kernels = tf.in_window(tf.kernels)  # type: ignore[attr-defined]
    return _totals(kernels) if len(kernels) else kernels.iloc[0:0]


def gpu_op_breakdown(tf: object) -> pd.DataFrame:
    """GPU kernel time per launching operator (the innermost op around each launch)."""
    kernels = tf.in_window(tf.kernel_ops)  # type: ignore[attr-defined]
    if not len(kernels):
        return kernels.iloc[0:0]
    named = kernels.assign(
        name=kernels["op_name"].where(kernels["op_name"] != "", "(no op recorded)")
    )
    return _totals(named)


def no_trace_reason(run: RunData) -> str:
    """Why a run folder holds no trace, as far as its documents say (never a guess)."""
    m = run.manifest
    if m is None:
        return "no trace in this folder"
    status = m.collectors.get("torch_profiler")
    if status is not None and not status.ok and status.reason:
        reason = status.reason
        return "no trace recorded (the run used --no-trace)" if reason == "--no-trace" else reason
    if m.kind == "watch":
        return "dsprof watch records no trace (dsprof trace PID takes one)"
    if m.options.get("trace") is False:
        return "no trace recorded (the run used --no-trace)"
    if m.status == "running":
        return "no trace yet (the trace is written when its window closes)"
    return "no trace in this run folder"


def trace_figures(run: RunData) -> tuple[list[FigureSpec], list[str]]:
    """Breakdowns and the roofline of the run's first trace; notes for what is missing."""
    source, label = run, ""
    if not run.trace_files:
        # a multi-rank run keeps each rank's trace in ranks/<rank>/trace: show the lowest rank's
        traced = [r for r, data in sorted(run.ranks.items()) if data.trace_files]
        if not traced:
            return [], [f"Op / kernel breakdown: {no_trace_reason(run)}"]
        source, label = run.ranks[traced[0]], f"rank {traced[0]}: "
    try:
        tf = source.traces[0]
    except DsprofError as e:
        return [], [f"Op / kernel breakdown: the trace could not be read: {e}"]
    specs: list[FigureSpec] = []
    notes: list[str] = []
    where = label + source.trace_files[0].name
    if len(source.trace_files) > 1 or label:
        notes.append(f"trace figures show {where} ({len(source.trace_files)} trace files there)")
    for key, title, frame, why_not in (
        ("ops", "Host op time (top-level ops)", op_breakdown(tf), "no host ops in the trace"),
        ("annotations", "record_function regions", annotation_breakdown(tf), ""),
        ("kernels", "GPU kernel time", kernel_breakdown(tf), "no GPU kernels (CPU run)"),
        ("gpu_ops", "GPU time per operator", gpu_op_breakdown(tf), ""),
    ):
        fig = breakdown_figure(frame, "name", "dur_ns", title) if len(frame) else None
        if fig is not None:
            specs.append(FigureSpec(key, title, fig))
        elif why_not:
            notes.append(f"{title}: {why_not}")
    from dsprof.report.roofline_figure import roofline_figure

    roof, why = roofline_figure(tf)
    if roof is not None:
        specs.append(FigureSpec("roofline", "Roofline", roof))
    else:
        notes.append(f"Roofline: {why}")
    return specs, notes
