"""Per-rank step times of a dsprof multi-rank job, and where each rank's iteration goes.

A job whose ranks meet in a collective every iteration runs in lockstep: every rank's loop takes
as long as the slowest rank's, and the others spend the difference waiting in the collective.
So the rank to blame is not the one with the longest iteration but the one with the most time of
its own (outside collectives). Per rank, from ranks/<r>/ (steps.parquet and the rank's trace,
both on the epoch-ns clock):

    step_ns        median duration of the steady steps (step >= warm-up) in steps.parquet
    iteration_ns   over the traced steps, from one step's start to the next: the loop's cadence,
                   including what happens between steps (a collective after the forward,
                   fetching the next batch)
    collective_ns  per iteration, the union of the rank's collective spans in that window: host
                   spans (gloo:all_reduce on gloo's thread holds the wait; nccl:*, c10d::*) and
                   collective GPU kernels (NCCL kernels spin while they wait for peers)
    data_ns        per iteration, DataLoader __next__ spans (enumerate(DataLoader)...)
    compute_ns     iteration - collective - data: the rank's own work
    own_ns         compute + data: the time the other ranks wait for, when this rank is last

Without a trace of at least two traced steps on every rank (--no-trace, a short script, a script
without nn.Module calls, so without steps), the rank's own record of its torch.distributed calls
(metrics/collectives.parquet) gives the same split per call: iteration = from one call's start
to the next (the first call left out: it often waits out the other ranks' start-up), collective
= the synchronous call. Each phase is the median over the iterations (or calls). Without
either, own_ns is the median step time and the phases are unknown (NaN).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dsprof.analyzers.trace_scope import NS_PER_MS, clamp01, ms, severity_for
from dsprof.core.errors import DsprofError
from dsprof.core.findings import Evidence, Finding
from dsprof.trace.frames import DATALOADER_PREFIX
from dsprof.trace.intervals import busy_ns

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData
    from dsprof.trace.frames import TraceFrames

PHASE_COLUMNS = ("compute_ns", "data_ns", "collective_ns")
SOURCES = ("trace", "collectives", "steps")
# what one unit of each source's times is
PER = {"trace": "iteration", "collectives": "collective call", "steps": "step"}
# a rank's first collective often waits out the other ranks' start-up (loading a model, warming
# up): it is left out, as the warm-up step is
SKIP_FIRST_CALLS = 1
# a host whose CPUs are this busy on average makes ranks wait for a core: said in the finding,
# since a rank descheduled by other work looks like a straggler (measured: two balanced ranks on
# 2 loaded cores differed by 70 % of an iteration)
BUSY_HOST_PCT = 90.0
BUSY_HOST_CONFIDENCE = 0.6
# the last calls of a long job are enough to compare ranks, and keep the analysis fast
MAX_CALLS = 2000
COLUMNS = ("rank", "step_ns", "iteration_ns", *PHASE_COLUMNS, "own_ns", "steps", "source")


def _steady(steps: pd.DataFrame, warmup: int) -> pd.DataFrame:
    steady = steps[steps["step"] >= warmup]
    return steady if len(steady) else steps


def _collective_spans(tf: TraceFrames) -> tuple[np.ndarray, np.ndarray]:
    host = tf.comm_cpu
    dev = tf.comm_kernels if tf.has_gpu_activity else host.iloc[:0]
    starts = np.concatenate([host["ts_ns"].to_numpy(), dev["ts_ns"].to_numpy()])
    ends = np.concatenate([host["end_ns"].to_numpy(), dev["end_ns"].to_numpy()])
    return starts.astype(np.int64), ends.astype(np.int64)


def _data_spans(tf: TraceFrames) -> tuple[np.ndarray, np.ndarray]:
    a = tf.annotations
    dl = a[a["name"].astype(str).str.startswith(DATALOADER_PREFIX)]
    return dl["ts_ns"].to_numpy(np.int64), dl["end_ns"].to_numpy(np.int64)


Spans = tuple[np.ndarray, np.ndarray]


def _interval_phases(bounds: np.ndarray, coll: Spans, data: Spans | None) -> dict[str, float]:
    """Medians over the intervals [bounds[i], bounds[i+1]) of each phase.

    Medians, not totals: on a busy host one interval in which a rank was descheduled must not
    decide which rank is slow.
    """
    rows = []
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        in_coll = busy_ns(*coll, lo, hi)
        in_data = busy_ns(*data, lo, hi) if data is not None else 0
        rows.append(
            (
                hi - lo,
                in_coll,
                in_data,
                max(hi - lo - in_coll, 0),
                max(hi - lo - in_coll - in_data, 0),
            )
        )
    it, c, d, own, compute = (float(np.median(col)) for col in np.array(rows, dtype=float).T)
    return {
        "iteration_ns": it,
        "collective_ns": c,
        "data_ns": d if data is not None else np.nan,
        "compute_ns": compute,
        "own_ns": own,
    }


def _traced_phases(steps: pd.DataFrame, tf: TraceFrames) -> dict[str, float] | None:
    """Per-iteration phases over the traced steps, or None with fewer than two of them."""
    traced = steps[steps["traced"]] if "traced" in steps else steps.iloc[:0]
    if len(traced) < 2:
        return None
    bounds = np.sort(traced["start_ns"].to_numpy(np.int64))
    return _interval_phases(bounds, _collective_spans(tf), _data_spans(tf))


def _call_phases(calls: pd.DataFrame | None) -> dict[str, float] | None:
    """Per-call phases from collectives.parquet, or None with too few calls."""
    if calls is None or len(calls) < 2:
        return None
    # with very few calls the first one is kept: one interval is better than none
    skip = SKIP_FIRST_CALLS if len(calls) >= SKIP_FIRST_CALLS + 3 else 0
    calls = calls.sort_values("start_ns").iloc[skip:].tail(MAX_CALLS)
    sync = calls[~calls["async_op"].astype(bool)] if "async_op" in calls else calls
    coll = (sync["start_ns"].to_numpy(np.int64), sync["end_ns"].to_numpy(np.int64))
    return _interval_phases(calls["start_ns"].to_numpy(np.int64), coll, None)


def _measures(sub: RunData, warmup: int) -> tuple[float, int, dict[str, dict[str, float] | None]]:
    """(median steady step ns or NaN, steps, {source: phases or None}) for one rank."""
    has_steps = sub.steps is not None and len(sub.steps) > 0
    step_ns = np.nan
    traced = None
    if has_steps:
        assert sub.steps is not None
        step_ns = float(_steady(sub.steps, warmup)["duration_ns"].median())
        if sub.trace_files:
            try:
                traced = _traced_phases(sub.steps, sub.traces[0])
            except DsprofError:  # a trace cut short by a killed rank: other measures compare
                traced = None
    return (
        step_ns,
        len(sub.steps) if has_steps and sub.steps is not None else 0,
        {
            "trace": traced,
            "collectives": _call_phases(sub.collectives),
            "steps": {"own_ns": step_ns} if has_steps else None,
        },
    )


def rank_phases(run: RunData) -> pd.DataFrame:
    """One row per rank (columns: COLUMNS; times in ns); empty without ranks.

    `source` says what own_ns was measured from, the same for every rank so that they compare:
    "trace" (per iteration of the traced steps), "collectives" (per torch.distributed call,
    from collectives.parquet: no trace or no steps needed), or "steps" (step times only). The
    first one every rank has is used; when none is, the one most ranks have, without the others.
    """
    opt = run.manifest.options.get("warmup_steps", 1) if run.manifest else 1
    warmup = opt if isinstance(opt, int) else 1
    measured = {r: _measures(sub, warmup) for r, sub in sorted(run.ranks.items())}
    measured = {r: m for r, m in measured.items() if any(v is not None for v in m[2].values())}
    counts = {s: sum(m[2][s] is not None for m in measured.values()) for s in SOURCES}
    source = max(SOURCES, key=lambda s: (counts[s], -SOURCES.index(s)))
    rows = []
    for r, (step_ns, n_steps, by_source) in measured.items():
        phases = by_source[source]
        if phases is None:
            continue
        blank = {c: np.nan for c in ("iteration_ns", *PHASE_COLUMNS)}
        rows.append({"rank": r, "step_ns": step_ns, "steps": n_steps, **blank, **phases})
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "source"])
    df["source"] = source
    return df.reset_index(drop=True)


PHASE_NAMES = {"compute_ns": "compute", "data_ns": "data loading", "collective_ns": "collectives"}


def _per_rank(df: pd.DataFrame, column: str) -> str:
    """'0: 1.2, 1: 33.0' (ms) for evidence that names every rank."""
    return ", ".join(
        f"{int(r)}: {v / NS_PER_MS:.3g}" for r, v in zip(df["rank"], df[column], strict=True)
    )


def _host_busy_pct(sub: RunData) -> float | None:
    """Mean system CPU busy % over the rank's host samples (None without them)."""
    host = sub.host
    if host is None or "sys_cpu_pct" not in host or len(host) < 2:
        return None
    return float(host["sys_cpu_pct"].iloc[1:].mean())  # the first sample has no interval


def _phase_evidence(
    df: pd.DataFrame, slow: pd.Series, others: pd.DataFrame
) -> tuple[str, list[Evidence]]:
    """The phase where the slow rank exceeds the others most, and every rank's phase times."""
    source = str(df["source"].iloc[0])
    w = {
        "trace": "per iteration over the traced steps",
        "collectives": "per torch.distributed call (collectives.parquet)",
    }[source]
    deltas = {
        c: float(slow[c] - others[c].median()) for c in PHASE_COLUMNS if not np.isnan(slow[c])
    }
    phase = PHASE_NAMES[max(deltas, key=lambda c: deltas[c])]
    evidence = [
        Evidence(metric="phase", value=phase, source=source),
        *(
            Evidence(
                metric=f"{PHASE_NAMES[c].split()[0]}_delta_ms", value=ms(d), unit="ms", window=w
            )
            for c, d in deltas.items()
        ),
        Evidence(
            metric="per_rank_iteration_ms", value=_per_rank(df, "iteration_ns"), unit="ms", window=w
        ),
        Evidence(
            metric="per_rank_collective_ms",
            value=_per_rank(df, "collective_ns"),
            unit="ms",
            window=w,
            source=source,
        ),
    ]
    if source == "trace":
        evidence.append(
            Evidence(
                metric="per_rank_data_ms",
                value=_per_rank(df, "data_ns"),
                unit="ms",
                window=w,
                source="trace",
            )
        )
    return phase, evidence


def straggler_findings(run: RunData, medium: float, high: float) -> list[Finding]:
    """The straggler of a dsprof multi-rank job: the rank with the most time of its own.

    excess = (own of the slowest rank - median own of the others) / the slowest rank's
    iteration (its step with step times only): the share of every iteration the other ranks
    wait. The phase is the one (compute, data loading, collectives) where the slow rank exceeds
    the median of the others the most. `medium` / `high` are the straggler analyzer's thresholds.
    """
    df = rank_phases(run)
    if len(df) < 2:
        return []
    source = str(df["source"].iloc[0])
    slow_i = int(df["own_ns"].to_numpy().argmax())
    slow = df.iloc[slow_i]
    others = df.drop(index=slow_i)
    base = slow["step_ns"] if source == "steps" else slow["iteration_ns"]
    lag = float(slow["own_ns"] - others["own_ns"].median())
    excess = lag / max(float(base), 1.0)
    severity = severity_for(excess, medium, high)
    if severity is None:
        return []
    rank = int(slow["rank"])
    own_mean = float(df["own_ns"].mean())
    evidence = [
        Evidence(metric="slow_rank", value=f"rank {rank}", source=f"ranks/{rank}/"),
        Evidence(metric="slow_rank_own_ms", value=ms(slow["own_ns"]), unit="ms", source=source),
        Evidence(metric="median_other_own_ms", value=ms(others["own_ns"].median()), unit="ms"),
        Evidence(
            metric="straggler_excess", value=round(excess, 4), unit="fraction", threshold=medium
        ),
        Evidence(
            metric="load_imbalance",
            value=round(float(df["own_ns"].max()) / max(own_mean, 1.0) - 1.0, 4),
            unit="fraction",
            window="max / mean own time over ranks - 1",
        ),
        Evidence(metric="ranks", value=len(df), unit="count"),
    ]
    if df["step_ns"].notna().all():
        evidence.append(
            Evidence(
                metric="per_rank_step_ms",
                value=_per_rank(df, "step_ns"),
                unit="ms",
                source="ranks/<r>/metrics/steps.parquet",
            )
        )
    if source == "steps":
        phase = "unknown (step times only: compute, data and collectives not split)"
        detail = "Every collective waits for the slowest rank; balance its work or data."
    else:
        phase, more = _phase_evidence(df, slow, others)
        evidence += more
        detail = (
            f"The other ranks wait for rank {rank} in collectives: "
            f"{ms(others['collective_ns'].median())} ms per {PER[source]} against "
            f"{ms(slow['collective_ns'])} ms on rank {rank}. Balance its work or data, or fix "
            "its host or device."
        )
    busy = _host_busy_pct(run.ranks[rank])
    confidence = 1.0
    if busy is not None:
        evidence.append(
            Evidence(
                metric="slow_rank_host_cpu_busy_pct",
                value=round(busy, 1),
                unit="%",
                threshold=BUSY_HOST_PCT,
                window="whole run",
                source=f"ranks/{rank}/metrics/host.parquet",
            )
        )
        if busy >= BUSY_HOST_PCT:
            confidence = BUSY_HOST_CONFIDENCE
            detail += (
                f" Its host's CPUs were {busy:.0f}% busy: it may have waited for a core rather "
                "than worked (more busy processes than cores)."
            )
    per = PER[source]
    return [
        Finding(
            category="straggler",
            severity=severity,
            title=(
                f"rank {rank} is the straggler: {ms(slow['own_ns'])} ms of its own work per "
                f"{per} against {ms(others['own_ns'].median())} ms on the other "
                f"{len(others)} rank(s) (+{ms(lag)} ms, {excess:.0%} of each {per}), in {phase}"
            ),
            impact=clamp01(excess),
            confidence=confidence,
            evidence=evidence,
            recipes=[],
            analyzer="straggler",
            detail=detail,
        )
    ]
