"""Plotly figure builders shared by the HTML report and the dashboard.

Each builder takes run data and returns a `go.Figure`, or None when the run lacks what the figure
needs (a metric that was not collected is absent from the figure, never drawn as 0). No I/O, no
`fig.show()`. Times are seconds since the run started (run.json start_ns, the one epoch clock).

Plotly.js reads a subset of HTML in every label (`<b>`, `<br>`, `<a>`), so every name that comes
from the user's program (op, kernel, module, recipe) goes through `plot_text`, which escapes it so
it shows as the literal text.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dsprof.report.colors import GPU_DASHES, SERIES_COLORS

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from dsprof.core.steps import StepStats
    from dsprof.report.view_model import FixView
    from dsprof.store.run_store import RunData

TEMPLATE = "plotly_white"
# a step-boundary bar per step stays readable up to this many steps; beyond it the timeline
# shows the step durations as a line (thousands of bars make the page slow to draw)
MAX_STEP_BARS = 500
# op / kernel breakdowns show this many names; the rest is summed into "other"
TOP_N = 15
# hover text wraps long names (kernel template signatures) at this many characters a line
HOVER_WIDTH = 100
GIB = 2**30


@dataclass(frozen=True)
class FigureSpec:
    """A figure with the key and title a page uses for it."""

    key: str
    title: str
    figure: go.Figure


def plot_text(name: object) -> str:
    """Escape a name for a plotly label so `<b>` shows as text instead of bold."""
    return html.escape(str(name), quote=False)


def _origin_ns(run: RunData) -> int:
    if run.manifest is not None:
        return run.manifest.start_ns
    starts = [
        int(frame[col].min())
        for frame, col in ((run.steps, "start_ns"), (run.host, "ts_ns"), (run.gpu, "ts_ns"))
        if frame is not None and len(frame)
    ]
    return min(starts) if starts else 0


def _seconds(ns: pd.Series, origin_ns: int) -> pd.Series:
    return (ns.astype("int64") - origin_ns) / 1e9


def _with_column(frame: pd.DataFrame | None, column: str) -> pd.DataFrame | None:
    """A one-device table written without its device column: treat it as device 0."""
    if frame is None or column in frame:
        return frame
    return frame.assign(**{column: 0})


def layout(fig: go.Figure, title: str, height: int = 360) -> go.Figure:
    fig.update_layout(
        template=TEMPLATE,
        title={"text": plot_text(title), "x": 0.01},
        height=height,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def _iteration_row(run: RunData, origin: int) -> list[go.Scatter | go.Bar]:
    """The timeline's iterations: a light bar spanning each iteration (its edges are the
    iteration boundaries) with the model call drawn darker inside it from the same start."""
    import plotly.graph_objects as go

    from dsprof.core.steps import iterations

    it = iterations(run.steps)
    if not len(it.durations_ns):
        return []
    start = (it.starts_ns - origin) / 1e9
    label = "iteration" if it.basis != "model-calls" else "model call"
    if len(it.durations_ns) > MAX_STEP_BARS:
        traces: list[go.Scatter | go.Bar] = [
            go.Scatter(
                x=start,
                y=it.durations_ns / 1e6,
                mode="lines",
                name=f"{label} (ms)",
                line={"color": SERIES_COLORS["iteration"]},
            )
        ]
        if it.model_ns is not None and it.basis == "iterations":
            traces.append(
                go.Scatter(
                    x=start,
                    y=it.model_ns / 1e6,
                    mode="lines",
                    name="model call (ms)",
                    line={"color": SERIES_COLORS["model"]},
                )
            )
        return traces
    width = it.durations_ns / 1e9
    traces = [
        go.Bar(
            x=start + width / 2,
            y=it.durations_ns / 1e6,
            width=width,
            marker={"color": SERIES_COLORS["iteration"], "line": {"width": 0.5, "color": "white"}},
            name=f"{label} (ms)",
            customdata=np.arange(len(it.durations_ns)),
            hovertemplate=f"{label} %{{customdata}}<br>%{{y:.3f}} ms<extra></extra>",
        )
    ]
    if it.model_ns is not None and it.basis == "iterations":
        model_w = it.model_ns / 1e9
        traces.append(
            go.Bar(
                x=start + model_w / 2,
                y=it.model_ns / 1e6,
                width=model_w,
                marker={"color": SERIES_COLORS["model"]},
                name="model call (ms)",
                customdata=np.arange(len(it.model_ns)),
                hovertemplate="model call %{customdata}<br>%{y:.3f} ms<extra></extra>",
            )
        )
    return traces


def timeline_figure(run: RunData) -> go.Figure | None:
    """Iterations, GPU utilization/memory/power and host CPU/RSS over time, the traced window
    shaded, zoomed to the iterations (double-click shows the whole run)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    origin = _origin_ns(run)
    rows: list[tuple[str, list[go.Scatter | go.Bar]]] = []
    steps = run.steps
    if steps is not None and len(steps):
        rows.append(("iterations (ms)", _iteration_row(run, origin)))
    elif by_rank := rank_steps(run):
        # a multi-rank job keeps its steps per rank: one series per rank
        rows.append(
            (
                "model calls per rank (ms)",
                [
                    go.Scatter(
                        x=_seconds(part["start_ns"], origin),
                        y=part["duration_ns"].astype("int64") / 1e6,
                        mode="markers",
                        name=f"rank {rank} model call (ms)",
                    )
                    for rank, part in by_rank.items()
                ],
            )
        )
        steps = next(iter(by_rank.values()))  # the lowest rank's traced window is shaded
    gpu = _with_column(run.gpu, "gpu_index")
    if gpu is not None and len(gpu):
        for column, label, unit, scale in (
            ("util_gpu_pct", "GPU util", "%", 1.0),
            ("mem_used_bytes", "GPU mem", "GiB", 1 / GIB),
            ("power_w", "GPU power", "W", 1.0),
        ):
            if column not in gpu or gpu[column].isna().all():
                continue
            traces = []
            for n, (index, part) in enumerate(gpu.groupby("gpu_index", sort=True)):
                part = part.sort_values("ts_ns")
                traces.append(
                    go.Scatter(
                        x=_seconds(part["ts_ns"], origin),
                        y=part[column] * scale,
                        mode="lines",
                        name=f"{label} {unit} (GPU {index})",
                        line={
                            "color": SERIES_COLORS[label],
                            "dash": GPU_DASHES[n % len(GPU_DASHES)],
                        },
                    )
                )
            rows.append((f"{label} ({unit})", traces))
    host = run.host
    if host is not None and len(host):
        host = host.sort_values("ts_ns")
        t = _seconds(host["ts_ns"], origin)
        # two scales, so two rows: the process tree (100 % = one core, can pass 100) and the
        # whole machine (100 % = every core)
        for column, name, title in (
            ("proc_cpu_pct", "process CPU", "process CPU (% of one core)"),
            ("sys_cpu_pct", "system CPU", "system CPU (% of all cores)"),
        ):
            if column in host and not host[column].isna().all():
                line = {"color": SERIES_COLORS[name]}
                rows.append(
                    (title, [go.Scatter(x=t, y=host[column], mode="lines", name=name, line=line)])
                )
        if "proc_rss_bytes" in host and not host["proc_rss_bytes"].isna().all():
            rss = go.Scatter(
                x=t,
                y=host["proc_rss_bytes"] / GIB,
                mode="lines",
                name="RSS",
                line={"color": SERIES_COLORS["RSS"]},
            )
            rows.append(("RSS (GiB)", [rss]))
    rows = [(label, traces) for label, traces in rows if traces]
    if not rows:
        return None
    fig = make_subplots(
        rows=len(rows),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04 if len(rows) > 3 else 0.08,
        subplot_titles=[label for label, _ in rows],
    )
    for i, (label, traces) in enumerate(rows, start=1):
        for trace in traces:
            fig.add_trace(trace, row=i, col=1)
        unit = label[label.index("(") + 1 : -1] if label.endswith(")") else ""
        fig.update_yaxes(title_text=unit, rangemode="tozero", row=i, col=1)
    fig.update_layout(barmode="overlay")
    if steps is not None and len(steps) and "traced" in steps and steps["traced"].any():
        window = steps[steps["traced"].astype(bool)]
        x0 = (int(window["start_ns"].min()) - origin) / 1e9
        x1 = (int(window["end_ns"].max()) - origin) / 1e9
        fig.add_vrect(
            x0=x0, x1=x1, fillcolor="orange", opacity=0.12, line_width=0, row="all", col=1
        )
        # one label for the shaded window, on the top row (row="all" would repeat it per row)
        fig.add_annotation(
            x=x0,
            y=1.0,
            xref="x",
            yref="paper",
            text="traced window",
            showarrow=False,
            xanchor="left",
            yanchor="top",
            font={"size": 10},
        )
    if steps is not None and len(steps):
        # zoomed to the iterations: start-up (imports, model build) and teardown are outside
        lo = (int(steps["start_ns"].min()) - origin) / 1e9
        hi = (int(steps["end_ns"].max()) - origin) / 1e9
        pad = max((hi - lo) * 0.02, 1e-3)
        fig.update_xaxes(range=[lo - pad, hi + pad])
    fig.update_xaxes(title_text="seconds since start", row=len(rows), col=1)
    return layout(fig, "Timeline (zoomed to the iterations)", height=150 * len(rows) + 140)


def rank_steps(run: RunData) -> dict[int, pd.DataFrame]:
    """Each rank's steps table (ranks without steps left out), by rank."""
    return {
        r: d.steps for r, d in sorted(run.ranks.items()) if d.steps is not None and len(d.steps)
    }


def latency_figure(
    steps: pd.DataFrame | None, stats: StepStats, by_rank: dict[int, pd.DataFrame] | None = None
) -> go.Figure | None:
    """Histogram of iteration times with the p50 and p99 marked (one per rank for a job whose
    steps are kept per rank)."""
    import plotly.graph_objects as go

    from dsprof.core.steps import iterations

    it = iterations(steps)
    label = stats.label if stats.basis else "iteration"
    if len(it.durations_ns) and it.traced is not None and stats.traced_excluded:
        # the traced ones apart: the figures leave them out (the profiler slows them)
        fig = go.Figure(
            [
                go.Histogram(
                    x=it.durations_ns[~it.traced] / 1e6,
                    nbinsx=40,
                    name=f"{label}s",
                    marker={"color": SERIES_COLORS["iteration"]},
                ),
                go.Histogram(
                    x=it.durations_ns[it.traced] / 1e6,
                    nbinsx=40,
                    name="traced (left out)",
                    marker={"color": SERIES_COLORS["traced"]},
                ),
            ]
        )
        fig.update_layout(barmode="stack")
    elif len(it.durations_ns):
        fig = go.Figure(
            go.Histogram(
                x=it.durations_ns / 1e6,
                nbinsx=40,
                name=f"{label}s",
                marker={"color": SERIES_COLORS["iteration"]},
            )
        )
    elif by_rank:
        fig = go.Figure(
            [
                go.Histogram(
                    x=iterations(part).durations_ns / 1e6,
                    nbinsx=40,
                    name=f"rank {rank}",
                    opacity=0.6,
                )
                for rank, part in by_rank.items()
            ]
        )
        fig.update_layout(barmode="overlay")
    else:
        return None
    marks = (("p50", stats.p50_ns, "green", "top left"), ("p99", stats.p99_ns, "red", "top right"))
    for name, value, color, side in marks:  # the labels on either side: close lines never overlap
        if value is not None:
            fig.add_vline(
                x=value / 1e6,
                line_color=color,
                line_dash="dash",
                annotation_text=f"{name} {value / 1e6:.3g} ms",
                annotation_position=side,
            )
    fig.update_xaxes(title_text=f"{label} time (ms)")
    fig.update_yaxes(title_text=f"{label}s")
    return layout(fig, f"{label.capitalize()} time distribution")


def cuda_memory_figure(run: RunData) -> go.Figure | None:
    """CUDA memory reserved vs allocated at step ends, per device."""
    import plotly.graph_objects as go

    mem = _with_column(run.cuda_memory, "device")
    if mem is None or len(mem) == 0:
        return None
    origin = _origin_ns(run)
    fig = go.Figure()
    for device, part in mem.groupby("device", sort=True):
        part = part.sort_values("ts_ns")
        t = _seconds(part["ts_ns"], origin)
        for column, label in (("reserved_bytes", "reserved"), ("allocated_bytes", "allocated")):
            if column in part and not part[column].isna().all():
                fig.add_trace(
                    go.Scatter(
                        x=t,
                        y=part[column] / GIB,
                        mode="lines+markers",
                        name=f"{label} (device {plot_text(device)})",
                    )
                )
    if not fig.data:
        return None
    fig.update_xaxes(title_text="seconds since start")
    fig.update_yaxes(title_text="GiB")
    return layout(fig, "CUDA memory: reserved vs allocated")


def rank_steps_figure(run: RunData) -> go.Figure | None:
    """Iteration times per rank (box per rank): a straggler stands out as the high box."""
    import plotly.graph_objects as go

    from dsprof.core.steps import iterations

    ranks = rank_steps(run)
    if not ranks:
        return None
    fig = go.Figure()
    for rank, steps in ranks.items():
        fig.add_trace(
            go.Box(y=iterations(steps).durations_ns / 1e6, name=f"rank {rank}", boxpoints="all")
        )
    fig.update_yaxes(title_text="iteration (ms)")
    return layout(fig, "Iteration times per rank")


def fix_trials_figure(fix: FixView) -> go.Figure | None:
    """Speed-up of each fix trial over the baseline with its 95% interval (1 = no change)."""
    import plotly.graph_objects as go

    trials = [t for t in fix.trials if t.get("speedup") is not None]
    if not trials:
        return None
    names = [plot_text(t["name"]) for t in trials]
    speedup = [t["speedup"] for t in trials]
    lo = [t.get("ci_low") if t.get("ci_low") is not None else t["speedup"] for t in trials]
    hi = [t.get("ci_high") if t.get("ci_high") is not None else t["speedup"] for t in trials]
    colors = [
        SERIES_COLORS["accepted"]
        if t.get("accepted")
        else SERIES_COLORS["slower" if t.get("speedup", 1) < 1 else "no change"]
        for t in trials
    ]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=speedup,
            marker={"color": colors},
            name="speed-up",
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [h - s for h, s in zip(hi, speedup, strict=True)],
                "arrayminus": [s - lo_ for s, lo_ in zip(speedup, lo, strict=True)],
            },
            hovertemplate="%{x}<br>x%{y:.3f}<extra></extra>",
        )
    )
    fig.add_hline(y=1.0, line_dash="dot", line_color="black")
    fig.update_yaxes(title_text="speed-up of iteration p50 (x, 95% interval)")
    return layout(fig, "Fix trials: before / after")


def _top_n(frame: pd.DataFrame, name_col: str, value_col: str, n: int = TOP_N) -> pd.DataFrame:
    """The n largest rows by value, the rest summed into one 'other' row."""
    import pandas as pd

    ordered = frame.sort_values([value_col, name_col], ascending=[False, True])
    head = ordered.head(n)
    rest = ordered.iloc[n:][value_col].sum()
    if rest > 0:
        other = {name_col: ["(other)"], value_col: [rest]}
        if "full" in frame:
            other["full"] = [f"{len(ordered) - n} more names"]
        head = pd.concat([head, pd.DataFrame(other)])
    return head


def hover_text(name: str, width: int = HOVER_WIDTH) -> str:
    """A long name (a kernel's template signature) escaped for plotly and wrapped with <br>."""
    return "<br>".join(plot_text(name[i : i + width]) for i in range(0, len(name), width)) or ""


def breakdown_figure(
    frame: pd.DataFrame, name_col: str, value_col: str, title: str, unit_scale: float = 1e-6
) -> go.Figure | None:
    """Horizontal bars of total time per name (ns in value_col, shown in ms)."""
    import plotly.graph_objects as go

    if frame is None or len(frame) == 0:
        return None
    columns = [name_col, value_col] + (["full"] if "full" in frame else [])
    top = _top_n(frame[columns], name_col, value_col)
    top = top.iloc[::-1]  # largest at the top of a horizontal bar chart
    full = top["full"] if "full" in top else top[name_col]
    fig = go.Figure(
        go.Bar(
            y=[plot_text(n) for n in top[name_col]],
            x=top[value_col].astype("float64") * unit_scale,
            orientation="h",
            name=plot_text(title),
            customdata=[hover_text(str(n)) for n in full],
            hovertemplate="%{customdata}<br>%{x:.3f} ms<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="total time (ms)")
    fig.update_yaxes(automargin=True, type="category")
    return layout(fig, title, height=max(300, 28 * len(top) + 120))


def figure_json(fig: go.Figure) -> dict[str, Any]:
    """The figure as a plain dict (what dcc.Graph and the HTML report's JSON embed)."""
    import json

    import plotly.io as pio

    return json.loads(pio.to_json(fig, validate=False, engine="json"))
