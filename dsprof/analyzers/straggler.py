"""straggler: one rank of a multi-rank job is slower than the rest, and every collective waits for it.

Detects: the rank whose step takes longest, when it is markedly slower than the typical rank.
Signal: per rank (one trace per rank, from distributedInfo.rank or file order; or the per-rank
    folders of a dsprof run), the median ProfilerStep duration (the trace window when no steps
    were recorded). excess = (slowest - median over ranks) / slowest: the share of every step
    the other ranks spend waiting at the next collective. Per rank, compute time (GPU busy
    outside collectives) and collective time are given as evidence: the straggler usually has
    more compute and less collective wait than the others.
    For a dsprof multi-rank job (RunData.ranks), dsprof.analyzers.rank_phases measures instead:
    per rank, the time of its own per iteration (iteration minus collectives, from steps.parquet
    and the rank's trace; else from its timed torch.distributed calls; else its step time),
    since ranks that meet in a collective every iteration all take the slowest one's time. The
    straggler is the rank with the most own time, excess = (its own - median own of the others)
    / its iteration, and the phase (compute, data loading, collectives) where it exceeds the
    others is named.
Thresholds: STRAGGLER_MEDIUM 10 % and STRAGGLER_HIGH 25 % excess. Ranks of one job running the
    same program differ by a few percent from noise; a 10 % gap is a systematic difference
    (data skew, a slower GPU, a noisy host).
Evidence: the slow rank, its step ms, the median and fastest ranks' step ms, its compute and
    collective ms, the number of ranks.
False positives: traces of different steps or different jobs passed together; ranks with
    deliberately different work (pipeline stages).
References: HTA "Straggler analysis" (find_stragglers_with_late_start_comm_kernels);
    PyTorch distributed "Straggler detection" (torch.distributed.elastic / c10d logger).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from dsprof.analyzers.rank_phases import straggler_findings
from dsprof.analyzers.trace_scope import clamp01, ms, rank_label, severity_for
from dsprof.core.findings import Evidence, Finding
from dsprof.trace.intervals import busy_ns, clip

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData
    from dsprof.trace.frames import TraceFrames

STRAGGLER_MEDIUM = 0.10
STRAGGLER_HIGH = 0.25


def rank_traces(run: RunData) -> list[tuple[str, TraceFrames]]:
    """(rank label, trace) for every rank: per-rank folders first, else the run's trace files."""
    if len(run.ranks) > 1:
        out = []
        for r, sub in sorted(run.ranks.items()):
            for tf in sub.traces[:1]:
                out.append((f"rank {r}", tf))
        return out
    if len(run.trace_files) > 1:
        return [(rank_label(tf, i), tf) for i, tf in enumerate(run.traces)]
    return []


def step_ns(tf: TraceFrames) -> int:
    """Median ProfilerStep duration, or the window when there are no steps."""
    if len(tf.steps):
        return int(tf.steps["dur_ns"].median())
    return tf.window_ns


def _split_ns(tf: TraceFrames) -> tuple[int, int]:
    """(compute ns, collective ns) on the GPU inside the window; (0, 0) without GPU activity."""
    if not tf.has_gpu_activity:
        return 0, 0
    lo, hi = tf.window
    k = tf.in_window(tf.kernels)
    comm = k["correlation"].isin(tf.comm_kernels["correlation"])
    compute = busy_ns(
        *clip(k[~comm]["ts_ns"].to_numpy(), k[~comm]["end_ns"].to_numpy(), lo, hi), lo, hi
    )
    coll = busy_ns(*clip(k[comm]["ts_ns"].to_numpy(), k[comm]["end_ns"].to_numpy(), lo, hi), lo, hi)
    return compute, coll


class StragglerAnalyzer:
    """See the module docstring."""

    name: ClassVar[str] = "straggler"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("ranks",)

    def analyze(self, run: RunData) -> list[Finding]:
        """One finding naming the slowest rank, when it lags the median rank enough."""
        if len(run.ranks) > 1:  # a dsprof multi-rank job: per-rank steps and phases
            return straggler_findings(run, STRAGGLER_MEDIUM, STRAGGLER_HIGH)
        ranks = rank_traces(run)
        if len(ranks) < 2:
            return []
        steps = np.array([step_ns(tf) for _, tf in ranks], dtype=np.int64)
        slow = int(np.argmax(steps))
        median = float(np.median(steps))
        excess = (steps[slow] - median) / max(steps[slow], 1)
        severity = severity_for(excess, STRAGGLER_MEDIUM, STRAGGLER_HIGH)
        if severity is None:
            return []
        label, tf = ranks[slow]
        compute, coll = _split_ns(tf)
        others = [_split_ns(t) for i, (_, t) in enumerate(ranks) if i != slow]
        evidence = [
            Evidence(metric="slow_rank", value=label, source=f"trace: {tf.path.name}"),
            Evidence(
                metric="slow_rank_step_ms", value=ms(steps[slow]), unit="ms", window=tf.window_label
            ),
            Evidence(metric="median_rank_step_ms", value=ms(median), unit="ms"),
            Evidence(metric="fastest_rank_step_ms", value=ms(steps.min()), unit="ms"),
            Evidence(
                metric="straggler_excess",
                value=round(float(excess), 4),
                unit="fraction",
                threshold=STRAGGLER_MEDIUM,
            ),
            Evidence(metric="ranks", value=len(ranks), unit="count"),
        ]
        if tf.has_gpu_activity:
            evidence += [
                Evidence(
                    metric="slow_rank_compute_ms",
                    value=ms(compute),
                    unit="ms",
                    window=tf.window_label,
                ),
                Evidence(
                    metric="median_other_compute_ms",
                    value=ms(float(np.median([c for c, _ in others]))),
                    unit="ms",
                ),
                Evidence(
                    metric="slow_rank_collective_ms",
                    value=ms(coll),
                    unit="ms",
                    window=tf.window_label,
                ),
            ]
        return [
            Finding(
                category="straggler",
                severity=severity,
                title=(
                    f"{label} is the straggler: its step takes {ms(steps[slow])} ms against a "
                    f"median of {ms(median)} ms over {len(ranks)} ranks ({excess:.0%} of each step lost)"
                ),
                impact=clamp01(excess),
                evidence=evidence,
                recipes=[],
                analyzer=self.name,
                detail="Every collective waits for the slowest rank; balance its data or fix its host.",
            )
        ]
