"""Figures that compare two runs on shared axes.

Two distributions or two breakdowns are drawn in one figure (A and B in their fixed colours,
the same bins, the same axis); figures shown side by side get the same axis ranges
(`share_axes`), so a taller bar is a larger number and never an artefact of autoscaling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dsprof.report.colors import SERIES_COLORS
from dsprof.report.figures import layout

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from dsprof.report.breakdown import Breakdown

# bins of the overlaid iteration-time histograms
BINS = 40


def iterations_overlay(a_ns: np.ndarray, b_ns: np.ndarray) -> go.Figure | None:
    """Both runs' iteration times as histograms on the same bins and axis."""
    import plotly.graph_objects as go

    if not len(a_ns) and not len(b_ns):
        return None
    both = np.concatenate([a_ns, b_ns]) / 1e6
    lo, hi = float(both.min()), float(both.max())
    size = (hi - lo) / BINS if hi > lo else max(hi * 0.01, 1e-3)
    bins = {"start": lo, "end": hi + size, "size": size}
    fig = go.Figure()
    for name, values in (("A", a_ns), ("B", b_ns)):
        if len(values):
            fig.add_trace(
                go.Histogram(
                    x=values / 1e6,
                    xbins=bins,
                    name=f"{name} (p50 {np.median(values) / 1e6:.3g} ms)",
                    marker={"color": SERIES_COLORS[name]},
                    opacity=0.6,
                )
            )
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title_text="iteration time (ms)")
    fig.update_yaxes(title_text="iterations")
    return layout(fig, "Iteration time: A and B on one axis")


def breakdown_comparison(a: Breakdown | None, b: Breakdown | None) -> go.Figure | None:
    """Mean time per iteration of each part, A beside B: where the change went."""
    import plotly.graph_objects as go

    runs = [(name, bd) for name, bd in (("A", a), ("B", b)) if bd is not None]
    if not runs:
        return None
    parts: list[str] = []
    for _, bd in runs:
        parts += [p for p in (*bd.host, *bd.gpu) if p not in parts]
    fig = go.Figure()
    for name, bd in runs:
        values = {**bd.host, **bd.gpu}
        y = [float(values[p].mean()) / 1e6 if p in values else None for p in parts]
        fig.add_trace(go.Bar(x=parts, y=y, name=name, marker={"color": SERIES_COLORS[name]}))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="mean ms per iteration")
    return layout(fig, "Where the iteration time went: A and B")


def _axis_key(ref: str, axis: str) -> str:
    """A trace's axis reference ('x2') as its layout key ('xaxis2')."""
    return f"{axis}axis{ref[1:]}"


def _numeric(values: Any) -> np.ndarray | None:
    if values is None:
        return None
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None  # categories: nothing to share
    arr = arr[np.isfinite(arr)]
    return arr if arr.size else None


def _ranges(fig: go.Figure) -> dict[str, tuple[float, float, frozenset[str]]]:
    """Per numeric axis of a figure: its data range (bars from 0) and the series drawn on it."""
    out: dict[str, tuple[float, float, frozenset[str]]] = {}
    for trace in fig.data:
        for axis in ("x", "y"):
            if trace.type == "histogram" and axis == "y":
                continue  # counts are binned by plotly.js: not known here
            values = _numeric(getattr(trace, axis, None))
            if values is None:
                continue
            key = _axis_key(getattr(trace, f"{axis}axis", None) or axis, axis)
            lo, hi = float(values.min()), float(values.max())
            if trace.type == "bar":
                lo = min(lo, 0.0)
            zoom = fig.layout[key].range
            if zoom is not None:
                lo, hi = min(lo, zoom[0]), max(hi, zoom[1])
            name = str(trace.name or "").split(" (")[0]
            if key in out:
                olo, ohi, names = out[key]
                out[key] = (min(lo, olo), max(hi, ohi), names | {name})
            else:
                out[key] = (lo, hi, frozenset({name}))
    return out


def share_axes(a: go.Figure, b: go.Figure) -> None:
    """Give two figures shown side by side the same range on every numeric axis that shows the
    same series in both (a GPU run's timeline has rows a CPU run's lacks: those stay apart).
    Bars start at 0; an axis zoomed already (the timeline) keeps the union of both zooms."""
    ra, rb = _ranges(a), _ranges(b)
    for key_a, (alo, ahi, names) in ra.items():
        # the axis of B that shows the same series (a row may sit at another position in B)
        key_b = next((k for k, (_, _, n) in rb.items() if n == names and k[0] == key_a[0]), None)
        if key_b is None:
            continue
        blo, bhi = rb[key_b][0], rb[key_b][1]
        lo, hi = min(alo, blo), max(ahi, bhi)
        pad = (hi - lo) * 0.04 or abs(hi) * 0.04 or 1.0
        span = [lo if lo == 0 else lo - pad, hi + pad]
        for fig, key in ((a, key_a), (b, key_b)):
            fig.layout[key].range = span
            fig.layout[key].autorange = False
