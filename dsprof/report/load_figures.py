"""Figures of a `dsprof load` run (HTML report and dashboard alike): the latency-throughput
curve with the SLO line, latency CDF per priority class, goodput against offered rate, and
latency over the load's time line. Pure builders over RunData; None when the run is not a load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dsprof.report.figures import TEMPLATE, FigureSpec, plot_text

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from dsprof.core.load import LoadSummary
    from dsprof.store.run_store import RunData

# a CDF or time line draws at most this many points per class (evenly thinned)
MAX_POINTS = 4000


def _latency_slo_ms(summary: LoadSummary, name: str = "p99") -> float | None:
    for step in summary.steps:
        for r in step.slos:
            if r.metric == name and r.unit == "ms" and r.target is not None:
                return r.target
    return None


def curve_figure(summary: LoadSummary) -> go.Figure | None:
    """p50 and p99 latency against offered rate (achieved rate in the hover), with the SLO."""
    import plotly.graph_objects as go

    steps = [s for s in summary.steps if s.latency.count]
    if not steps:
        return None
    closed = summary.mode == "closed-loop"
    x = [s.concurrency if closed else s.offered_rate_per_s for s in steps]
    order = np.argsort(np.asarray(x, dtype=float))
    fig = go.Figure()
    for name in ("p50_ms", "p99_ms"):
        fig.add_trace(
            go.Scatter(
                x=[x[i] for i in order],
                y=[getattr(steps[i].latency, name) for i in order],
                mode="lines+markers",
                name=name.split("_")[0],
                customdata=[
                    [steps[i].achieved_rate_per_s, "" if steps[i].valid else "invalid"]
                    for i in order
                ],
                hovertemplate="offered %{x}<br>%{y:.1f} ms<br>achieved %{customdata[0]:.1f} req/s %{customdata[1]}<extra></extra>",
            )
        )
    slo = _latency_slo_ms(summary)
    if slo is not None:
        fig.add_hline(
            y=slo, line_dash="dash", line_color="red", annotation_text=f"SLO p99 < {slo:g} ms"
        )
    fig.update_layout(
        template=TEMPLATE,
        xaxis_title="concurrency (closed loop)" if closed else "offered rate (req/s)",
        yaxis_title="latency (ms, from the scheduled send)",
        yaxis_type="log",
    )
    return fig


def cdf_figure(run: RunData) -> go.Figure | None:
    """Latency CDF per priority class (every completed request, all steps)."""
    import plotly.graph_objects as go

    df = run.requests
    if df is None or not len(df) or df["latency_ns"].isna().all():
        return None
    ok = df[df["latency_ns"].notna()]
    fig = go.Figure()
    groups = ok.groupby(ok["priority"].fillna("all"), sort=True)
    for cls, part in groups:
        ms = np.sort(part["latency_ns"].to_numpy(dtype=float)) / 1e6
        share = np.arange(1, len(ms) + 1) / len(ms)
        keep = np.unique(np.linspace(0, len(ms) - 1, min(len(ms), MAX_POINTS)).astype(int))
        fig.add_trace(go.Scatter(x=ms[keep], y=share[keep], mode="lines", name=plot_text(cls)))
    fig.update_layout(template=TEMPLATE, xaxis_title="latency (ms)", yaxis_title="share of requests",
                      xaxis_type="log")  # fmt: skip
    return fig


def goodput_figure(summary: LoadSummary) -> go.Figure | None:
    """Achieved rate and goodput against offered rate (goodput needs a latency SLO)."""
    import plotly.graph_objects as go

    steps = [s for s in summary.steps if s.goodput_per_s is not None]
    if not steps or summary.mode == "closed-loop":
        return None
    steps.sort(key=lambda s: s.offered_rate_per_s or 0.0)
    x = [s.offered_rate_per_s for s in steps]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=x, mode="lines", name="offered", line_dash="dot"))
    fig.add_trace(
        go.Scatter(
            x=x, y=[s.achieved_rate_per_s for s in steps], mode="lines+markers", name="achieved"
        )
    )
    fig.add_trace(
        go.Scatter(x=x, y=[s.goodput_per_s for s in steps], mode="lines+markers", name="goodput")
    )
    fig.update_layout(template=TEMPLATE, xaxis_title="offered rate (req/s)", yaxis_title="req/s")
    return fig


def timeline_figure(run: RunData) -> go.Figure | None:
    """Each request's latency at its scheduled time (errors marked), over the whole load."""
    import plotly.graph_objects as go

    df = run.requests
    if df is None or not len(df):
        return None
    t0 = int(df["scheduled_ns"].min())
    fig = go.Figure()
    ok = df[df["latency_ns"].notna()]
    for cls, part in ok.groupby(ok["priority"].fillna("all"), sort=True):
        step = max(len(part) // MAX_POINTS, 1)
        part = part.iloc[::step]
        fig.add_trace(go.Scattergl(
            x=(part["scheduled_ns"] - t0) / 1e9, y=part["latency_ns"] / 1e6, mode="markers",
            marker_size=3, name=plot_text(cls),
        ))  # fmt: skip
    bad = df[df["latency_ns"].isna()]
    if len(bad):
        fig.add_trace(go.Scattergl(
            x=(bad["scheduled_ns"] - t0) / 1e9, y=(bad["done_ns"] - bad["scheduled_ns"]) / 1e6,
            mode="markers", marker={"symbol": "x", "size": 6, "color": "red"},
            name="error", text=[plot_text(e) for e in bad["error"]],
        ))  # fmt: skip
    fig.update_layout(template=TEMPLATE, xaxis_title="scheduled send time (s from the first)",
                      yaxis_title="latency (ms)", yaxis_type="log")  # fmt: skip
    return fig


def load_figures(run: RunData) -> list[FigureSpec]:
    """The load figures that have data, in page order (empty for a run that is not a load)."""
    summary = run.load
    if summary is None:
        return []
    built = [
        ("load_curve", "Latency against offered load", curve_figure(summary)),
        ("load_cdf", "Latency CDF per priority class", cdf_figure(run)),
        ("load_goodput", "Goodput", goodput_figure(summary)),
        ("load_timeline", "Latency during the load", timeline_figure(run)),
    ]
    return [FigureSpec(k, t, f) for k, t, f in built if f is not None]
