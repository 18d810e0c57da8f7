"""The roofline: GPU kernels' arithmetic intensity against the device's compute and memory roofs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import plotly.graph_objects as go


def roofline_figure(tf: object) -> tuple[go.Figure | None, str]:
    """The roofline of a trace's GPU ops, or None and why it cannot be drawn."""
    if not getattr(tf, "has_gpu_activity", False):
        return None, "no GPU kernels in the trace (CPU run)"
    return None, "roofline needs dsprof.trace.roofline (not available yet)"
