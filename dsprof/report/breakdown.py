"""Where each iteration's time goes: the first figure of a report.

One stacked bar per iteration (dsprof.core.steps: model call to model call), split on the host
into the parts a finding can name:
    model       the model call itself (less any host sync inside it)
    data wait   DataLoader fetches (`enumerate(DataLoader)#...__next__` spans)
    host sync   the host waiting for the device: `aten::item` / `_local_scalar_dense` /
                `is_nonzero` ops and the runtime's synchronize and blocking-copy calls
    other       the rest of the loop (pre/post-processing, Python between calls)
and, when the trace has device activity, on the GPU (its busiest device) into
    kernel      time a kernel ran
    memcpy      copies and sets while no kernel ran
    idle        nothing ran
Host parts are measured on the loop's thread (the thread of the profiler's step spans) inside
the traced iterations; an untraced run is split into model and other from steps.parquet alone.
The top finding's part is drawn in full colour and the others faded, so the chart shows the
bottleneck the finding names. Pure: data in, numbers and a figure out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dsprof.report.colors import SERIES_COLORS
from dsprof.trace.intervals import busy_ns, union_intervals

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from dsprof.core.steps import Iterations
    from dsprof.store.run_store import RunData
    from dsprof.trace.frames import TraceFrames

HOST_PARTS = ("model", "data wait", "host sync", "other")
GPU_PARTS = ("kernel", "memcpy", "GPU idle")
# which part of the iteration a finding's category is about
CATEGORY_PART: dict[str, str] = {
    "io-stall": "data wait",
    "host-sync": "host sync",
    "gpu-idle": "GPU idle",
    "launch-overhead": "GPU idle",
    "memory-bandwidth-bound": "kernel",
    "no-tensor-cores": "kernel",
    "idle-sm": "kernel",
    "cpu-threads": "model",
    "cpu-fp32-linear": "model",
    "autograd-in-inference": "model",
    "train-mode-in-inference": "model",
    "small-batch": "model",
    "memory-fragmentation": "model",
}
SYNC_OPS = frozenset({"aten::item", "aten::_local_scalar_dense", "aten::is_nonzero"})
DATALOADER_PREFIX = "enumerate(DataLoader)"
# untraced runs show at most this many iterations (the latest ones)
MAX_BARS = 60


@dataclass
class Breakdown:
    """Per-iteration time (ns) of each part; parts that were not measured are absent."""

    labels: list[str]
    totals_ns: np.ndarray
    host: dict[str, np.ndarray]
    gpu: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""  # which iterations and from what, in words

    def share(self, part: str) -> float | None:
        """A part's share of the iterations' total time (None when not measured)."""
        values = self.host.get(part, self.gpu.get(part))
        total = float(self.totals_ns.sum())
        return None if values is None or total <= 0 else float(values.sum()) / total

    def shares(self) -> list[tuple[str, float]]:
        """(part, share of the iterations' time) for every measured part, host then GPU."""
        out = [(p, self.share(p)) for p in (*self.host, *self.gpu)]
        return [(p, s) for p, s in out if s is not None]


def _loop_thread(tf: TraceFrames) -> int | None:
    """The thread that runs the loop: where the profiler's step spans are, else the busiest."""
    steps = tf.annotations[tf.annotations["name"].astype(str).str.startswith("ProfilerStep#")]
    if len(steps):
        return int(steps["tid"].mode().iloc[0])
    ops = tf.cpu_ops
    if not len(ops):
        return None
    return int(ops.groupby("tid", observed=True)["dur_ns"].sum().idxmax())


def _spans(frame: pd.DataFrame, tid: int | None) -> tuple[np.ndarray, np.ndarray]:
    if tid is not None and "tid" in frame:
        frame = frame[frame["tid"] == tid]
    return frame["ts_ns"].to_numpy(dtype=np.int64), frame["end_ns"].to_numpy(dtype=np.int64)


def measure(
    tf: TraceFrames, starts: np.ndarray, ends: np.ndarray, model_ends: np.ndarray | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Host and GPU parts of each window [starts[i], ends[i]) from a trace.

    model_ends: where the model call of each window ends (None: the model call is not known,
    as in a bare trace; its time is then part of "other").
    """
    tid = _loop_thread(tf)
    names = tf.annotations["name"].astype(str)
    dl = _spans(tf.annotations[names.str.startswith(DATALOADER_PREFIX)], tid)
    ops = tf.cpu_ops
    sync_ops = _spans(ops[ops["name"].astype(str).isin(SYNC_OPS)], tid)
    sync_rt = _spans(tf.host_syncs, None)  # runtime calls: on the launching thread
    sync = union_intervals(
        np.concatenate([sync_ops[0], sync_rt[0]]), np.concatenate([sync_ops[1], sync_rt[1]])
    )
    data_or_sync = union_intervals(
        np.concatenate([dl[0], sync[0]]), np.concatenate([dl[1], sync[1]])
    )
    n = len(starts)
    host = {p: np.zeros(n, dtype=np.int64) for p in HOST_PARTS}
    for i, (lo, hi) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        host["host sync"][i] = busy_ns(*sync, lo, hi)
        host["data wait"][i] = busy_ns(*data_or_sync, lo, hi) - host["host sync"][i]
        if model_ends is not None:
            m_end = min(int(model_ends[i]), hi)
            host["model"][i] = max(m_end - lo - busy_ns(*sync, lo, m_end), 0)
        used = host["model"][i] + host["data wait"][i] + host["host sync"][i]
        host["other"][i] = max(hi - lo - used, 0)
    if model_ends is None:
        del host["model"]
    gpu: dict[str, np.ndarray] = {}
    if tf.has_gpu_activity and len(tf.gpu_busy_events):
        busy = tf.gpu_busy_events
        device = int(busy.groupby("device")["dur_ns"].sum().idxmax()) if "device" in busy else None
        if device is not None:
            busy = busy[busy["device"] == device]
        kernels = _spans(busy[busy["cat"] == "kernel"], None)
        every = _spans(busy, None)
        gpu = {p: np.zeros(n, dtype=np.int64) for p in GPU_PARTS}
        for i, (lo, hi) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            k = busy_ns(*kernels, lo, hi)
            b = busy_ns(*every, lo, hi)
            gpu["kernel"][i], gpu["memcpy"][i], gpu["GPU idle"][i] = k, b - k, hi - lo - b
    return host, gpu


def _traced_iterations(it: Iterations, tf: TraceFrames) -> np.ndarray:
    """Indices of the iterations that lie wholly inside the trace's step window."""
    lo, hi = tf.window
    return np.flatnonzero((it.starts_ns >= lo) & (it.ends_ns <= hi))


def run_breakdown(run: RunData, warmup: int = 1, *, trace: bool = True) -> Breakdown | None:
    """The breakdown of a run's iterations: traced ones in full, else model / other
    (also when `trace` is False: the trace is then not read)."""
    from dsprof.core.errors import DsprofError
    from dsprof.core.steps import iterations

    it = iterations(run.steps)
    if not len(it.durations_ns):
        return None
    tf = None
    if trace and run.trace_files:
        try:
            tf = run.traces[0]
        except DsprofError:
            tf = None
    idx = _traced_iterations(it, tf) if tf is not None else np.array([], dtype=np.int64)
    if len(idx):
        assert tf is not None
        starts, ends = it.starts_ns[idx], it.ends_ns[idx]
        model_ends = starts + it.model_ns[idx] if it.model_ns is not None else None
        host, gpu = measure(tf, starts, ends, model_ends)
        return Breakdown(
            labels=[f"#{i}" for i in idx],
            totals_ns=ends - starts,
            host=host,
            gpu=gpu,
            source=f"the {len(idx)} traced iterations (from the trace and steps.parquet)",
        )
    first = warmup if len(it.durations_ns) > warmup else 0
    idx = np.arange(first, len(it.durations_ns))[-MAX_BARS:]
    if it.model_ns is None:
        return None  # marker steps without a trace: nothing to split them by
    durations, model = it.durations_ns[idx], it.model_ns[idx]
    return Breakdown(
        labels=[f"#{i}" for i in idx],
        totals_ns=durations,
        host={"model": model, "other": np.maximum(durations - model, 0)},
        source=f"{len(idx)} iterations from steps.parquet (no trace: model call and the rest)",
    )


def trace_breakdown(tf: TraceFrames) -> Breakdown | None:
    """The breakdown of a bare trace's ProfilerStep windows (the model call is not known)."""
    steps = tf.steps
    if not len(steps):
        return None
    starts = steps["start_ns"].to_numpy(dtype=np.int64)
    ends = steps["end_ns"].to_numpy(dtype=np.int64)
    host, gpu = measure(tf, starts, ends, None)
    return Breakdown(
        labels=[f"#{s}" for s in steps["step"]],
        totals_ns=ends - starts,
        host=host,
        gpu=gpu,
        source=f"the trace's {len(steps)} ProfilerStep windows",
    )


def breakdown_figure(bd: Breakdown, highlight: str | None = None) -> go.Figure:
    """Stacked bars per iteration (host row, and a GPU row when measured); `highlight` is the
    part the top finding names: drawn in full colour, the others faded."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from dsprof.report.figures import layout

    rows = [("host (the loop's thread)", bd.host)] + ([("GPU", bd.gpu)] if bd.gpu else [])
    fig = make_subplots(
        rows=len(rows),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=[title for title, _ in rows],
    )
    for r, (_, parts) in enumerate(rows, start=1):
        for part, values in parts.items():
            share = bd.share(part) or 0.0
            marked = highlight == part
            name = f"{part} {share:.0%}" + (" ◀ top finding" if marked else "")
            fig.add_trace(
                go.Bar(
                    x=bd.labels,
                    y=values / 1e6,
                    name=name,
                    legendgroup=f"row{r}",
                    marker={
                        "color": SERIES_COLORS[part],
                        "line": {"width": 2 if marked else 0, "color": "#1b1f24"},
                    },
                    opacity=1.0 if highlight in (None, part) else 0.35,
                    hovertemplate=f"{part}<br>%{{x}}: %{{y:.3f}} ms<extra></extra>",
                ),
                row=r,
                col=1,
            )
        fig.update_yaxes(title_text="ms", row=r, col=1)
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title_text="iteration (model call to model call)", row=len(rows), col=1)
    title = "Where each iteration's time goes"
    if highlight is not None and bd.share(highlight) is not None:
        title += f": {highlight} {bd.share(highlight):.0%}"
    return layout(fig, title, height=260 * len(rows) + 120)
