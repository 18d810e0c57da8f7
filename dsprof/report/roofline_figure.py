"""The roofline: GPU work's arithmetic intensity against the device's compute and memory roofs.

One point per operator call that launched kernels and whose FLOPs and bytes are known from its
recorded shapes and dtypes (dsprof.trace.roofline, through the kernel classification the
memory-bandwidth analyzer uses too: dsprof.trace.membound): x = FLOPs / byte, y = FLOPs / the summed time of its kernels. The roofs come from
the peak table in dsprof.trace.devices (one roof per compute dtype present): min(peak,
bandwidth x intensity). Points far below the roof are latency- or launch-bound; points on the
slanted roof are memory-bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dsprof.report.figures import TEMPLATE, plot_text

if TYPE_CHECKING:
    import plotly.graph_objects as go

# the op names with the most kernel time get their own colour; the rest share one
TOP_OPS = 8
ROOF_DASHES = ("dash", "dot", "dashdot")
DTYPE_LABEL = {"float": "fp32", "c10::BFloat16": "bf16", "c10::Half": "fp16"}


def roofline_points(tf: Any) -> tuple[Any, Any]:
    """(points per op call: op_name, dtype, flops, bytes, dur_ns; the GpuSpec) or (None, why)."""
    from dsprof.trace.membound import classify, device_spec

    spec = device_spec(tf)
    if spec is None:
        return None, f"no peak-table row for the GPU {tf.device_name()!r}"
    k = classify(tf, spec)
    k = k[(k["via"] == "roofline") & (k["op_index"] >= 0) & (k["dur_ns"] > 0)]
    if not len(k):
        return None, "no kernel's operator has recorded shapes (profile with record_shapes=True)"
    # an op launching several kernels is one point: its FLOPs once, its kernels' time summed
    points = k.groupby("op_index", sort=True).agg(
        op_name=("op_name", "first"),
        dtype=("dtype", "first"),
        flops=("flops", "first"),
        bytes=("bytes", "first"),
        dur_ns=("dur_ns", "sum"),
    )
    points = points[(points["flops"] > 0) & (points["bytes"] > 0)]
    if not len(points):
        return None, "no operator with FLOPs > 0 among the kernels"
    return points.reset_index(), spec


def roofline_figure(tf: Any) -> tuple[go.Figure | None, str]:
    """The roofline of a trace's GPU ops, or None and why it cannot be drawn."""
    import numpy as np
    import plotly.graph_objects as go

    if not getattr(tf, "has_gpu_activity", False):
        return None, "no GPU kernels in the trace (CPU run)"
    points, spec = roofline_points(tf)
    if points is None:
        return None, spec
    intensity = points["flops"] / points["bytes"]
    achieved = points["flops"] / (points["dur_ns"] / 1e9)
    points = points.assign(intensity=intensity, tflops=achieved / 1e12)
    by_time = points.groupby("op_name")["dur_ns"].sum().sort_values(ascending=False)
    top = list(by_time.index[:TOP_OPS])
    fig = go.Figure()
    lo, hi = float(intensity.min()) / 2, float(intensity.max()) * 2
    x = np.geomspace(max(lo, 1e-3), max(hi, lo * 10, 1.0), 64)
    for i, dtype in enumerate(sorted(set(points["dtype"]))):
        peak = spec.peak_tflops(dtype or "float")
        roof = np.minimum(peak, spec.mem_bw_gbs * 1e9 * x / 1e12)
        label = DTYPE_LABEL.get(dtype, dtype or "fp32")
        fig.add_trace(
            go.Scatter(
                x=x,
                y=roof,
                mode="lines",
                line={"dash": ROOF_DASHES[i % len(ROOF_DASHES)], "color": "black"},
                name=f"roof {label}: {peak:g} TFLOP/s, {spec.mem_bw_gbs:g} GB/s",
                hoverinfo="skip",
            )
        )
    for name in [*top, None]:
        part = (
            points[~points["op_name"].isin(top)]
            if name is None
            else points[points["op_name"] == name]
        )
        if not len(part):
            continue
        fig.add_trace(
            go.Scatter(
                x=part["intensity"],
                y=part["tflops"],
                mode="markers",
                opacity=0.7,
                name=plot_text(name) if name is not None else "(other ops)",
                text=[plot_text(n) for n in part["op_name"]],
                customdata=part["dur_ns"] / 1e3,
                hovertemplate="%{text}<br>%{x:.3g} FLOP/B<br>%{y:.3g} TFLOP/s"
                "<br>%{customdata:.1f} µs<extra></extra>",
            )
        )
    fig.update_xaxes(type="log", title_text="arithmetic intensity (FLOP / byte)")
    fig.update_yaxes(type="log", title_text="achieved TFLOP/s")
    device = tf.device_name() or spec.name
    fig.update_layout(
        template=TEMPLATE,
        title={
            "text": plot_text(f"Roofline: {device} ({spec.name} peaks: {spec.source})"),
            "x": 0.01,
        },
        height=460,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig, ""
