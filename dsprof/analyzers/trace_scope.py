"""What the trace analyzers share: which traces to read, severity bands, evidence shorthands.

GPU analyzers read only traces whose device work ran on a CUDA or HIP GPU and was recorded
(kernels, copies or sets); CPU analyzers only traces with no accelerator at all
(dsprof.trace.device_kind.trace_role). A CPU-only run, even on a machine whose
deviceProperties list GPUs, yields no GPU trace, so no GPU category can fire; a trace of another
accelerator (MTIA) or of a GPU whose device activity was not recorded is read by neither, so the
CPU is never blamed for work that ran elsewhere (the registry's notices say why).
When several traces are given (the ranks of one job), single-trace analyzers look at each rank
and keep the worst one, naming the rank.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from dsprof.core.findings import Evidence, Finding, Severity
from dsprof.trace.device_kind import trace_role

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData
    from dsprof.trace.frames import TraceFrames

NS_PER_MS = 1_000_000

TraceAnalysis = Callable[["TraceFrames"], list[Finding]]


def gpu_traces(run: RunData) -> list[TraceFrames]:
    """The run's traces that recorded GPU activity; [] when the run's work ran on the CPU
    (RunFacts.uses_device)."""
    if not run.trace_files or not run.facts.uses_device:
        return []
    return [tf for tf in run.traces if trace_role(tf) == "gpu"]


def cpu_traces(run: RunData) -> list[TraceFrames]:
    """The run's traces whose work ran on the CPU alone (no GPU or other accelerator)."""
    if not run.trace_files:
        return []
    return [tf for tf in run.traces if trace_role(tf) == "cpu"]


def rank_label(tf: TraceFrames, index: int) -> str:
    """'rank 3' from distributedInfo, else the trace's position among the files."""
    return f"rank {tf.rank}" if tf.rank is not None else f"trace {index}"


def worst_per_trace(
    traces: list[TraceFrames], analyze_one: Callable[[TraceFrames], list[Finding]]
) -> list[Finding]:
    """Run a single-trace analysis on each trace; keep the highest-impact finding per category.

    With several traces, the kept finding's title names the rank and how many ranks showed it.
    """
    per_category: dict[str, tuple[Finding, str, int]] = {}
    for i, tf in enumerate(traces):
        for f in analyze_one(tf):
            best = per_category.get(f.category)
            count = (best[2] if best else 0) + 1
            if best is None or f.impact > best[0].impact:
                per_category[f.category] = (f, rank_label(tf, i), count)
            else:
                per_category[f.category] = (best[0], best[1], count)
    out = []
    for f, label, count in per_category.values():
        if len(traces) > 1:
            f = f.model_copy(
                update={"title": f"{label} (worst of {count}/{len(traces)} ranks): {f.title}"}
            )
        out.append(f)
    return out


class PerTraceAnalyzer:
    """An analyzer that reads each trace alone: `on_gpu` on the run's GPU traces, `on_cpu` on its
    CPU-only traces (either may be None), keeping the worst rank's finding per category.

    Subclasses set `name` and the functions; `version` and `requires` default to 1 and a trace.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("trace",)
    on_gpu: ClassVar[TraceAnalysis | None] = None
    on_cpu: ClassVar[TraceAnalysis | None] = None

    def analyze(self, run: RunData) -> list[Finding]:
        """The GPU traces' findings, then the CPU-only traces'."""
        cls = type(self)
        gpu = worst_per_trace(gpu_traces(run), cls.on_gpu) if cls.on_gpu else []
        return gpu + (worst_per_trace(cpu_traces(run), cls.on_cpu) if cls.on_cpu else [])


def severity_for(
    value: float, medium: float, high: float, low: float | None = None
) -> Severity | None:
    """'high' at or above high, 'medium' at or above medium, 'low' at or above low, else None."""
    if value >= high:
        return "high"
    if value >= medium:
        return "medium"
    if low is not None and value >= low:
        return "low"
    return None


_SEVERITY_RANK = {"high": 3, "medium": 2, "low": 1}


def worse_severity(*severities: Severity | None) -> Severity | None:
    """The most severe of the given severities (None when all are None)."""
    return max(severities, key=lambda s: _SEVERITY_RANK.get(s or "", 0), default=None)


def ms(ns: float) -> float:
    """Nanoseconds to milliseconds, rounded for evidence."""
    return round(float(ns) / NS_PER_MS, 3)


def share_evidence(
    metric: str, value: float, threshold: float, tf: TraceFrames, source: str = "trace"
) -> Evidence:
    """A 0..1 share as an Evidence entry over the trace's analysis window."""
    return Evidence(
        metric=metric,
        value=round(float(value), 4),
        unit="fraction",
        threshold=threshold,
        window=tf.window_label,
        source=f"{source}: {tf.path.name}",
    )


def clamp01(x: float) -> float:
    """Impact must lie in 0..1."""
    return round(float(min(max(x, 0.0), 1.0)), 4)
