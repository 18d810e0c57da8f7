"""Per-rank step times of a dsprof multi-rank job, and where each rank's iteration goes.

A job whose ranks meet in a collective every iteration runs in lockstep: every rank's loop takes
as long as the slowest rank's, and the others spend the difference waiting in the collective.
So the rank to blame is not the one with the longest iteration but the one with the most time of
its own (outside collectives). Per rank, from ranks/<r>/ (steps.parquet and the rank's trace,
both on the epoch-ns clock):

    step_ns        median duration of the steady steps (step >= warm-up) in steps.parquet
    iteration_ns   over the traced steps: (start of the last - start of the first) / (n - 1),
                   the loop's cadence, including what happens between steps (a collective after
                   the forward, fetching the next batch)
    collective_ns  per iteration, the union of the rank's collective spans in that window: host
                   spans (gloo:all_reduce on gloo's thread holds the wait; nccl:*, c10d::*) and
                   collective GPU kernels (NCCL kernels spin while they wait for peers)
    data_ns        per iteration, DataLoader __next__ spans (enumerate(DataLoader)...)
    compute_ns     iteration - collective - data: the rank's own work
    own_ns         compute + data: the time the other ranks wait for, when this rank is last

Without a trace of at least two traced steps on every rank (--no-trace, a short script), the
phases are unknown (NaN) and own_ns falls back to the step time.
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


def _traced_phases(steps: pd.DataFrame, tf: TraceFrames) -> dict[str, float] | None:
    """Per-iteration phases over the traced steps, or None with fewer than two of them."""
    traced = steps[steps["traced"]] if "traced" in steps else steps.iloc[:0]
    if len(traced) < 2:
        return None
    starts = traced["start_ns"].to_numpy(np.int64)
    lo, hi, n = int(starts.min()), int(starts.max()), len(traced) - 1
    coll = busy_ns(*_collective_spans(tf), lo, hi) / n
    data = busy_ns(*_data_spans(tf), lo, hi) / n
    iteration = (hi - lo) / n
    return {
        "iteration_ns": iteration,
        "collective_ns": coll,
        "data_ns": data,
        "compute_ns": max(iteration - coll - data, 0.0),
        "own_ns": max(iteration - coll, 0.0),
    }


def rank_phases(run: RunData) -> pd.DataFrame:
    """One row per rank with steps (columns: COLUMNS; times in ns); empty without ranks.

    `source` says what own_ns was measured from: "trace" (per iteration, phases known) or
    "steps" (step times only), the same for every rank so that they compare.
    """
    opt = run.manifest.options.get("warmup_steps", 1) if run.manifest else 1
    warmup = opt if isinstance(opt, int) else 1
    rows = []
    for r, sub in sorted(run.ranks.items()):
        if sub.steps is None or not len(sub.steps):
            continue
        steady = _steady(sub.steps, warmup)
        traced = None
        if sub.trace_files:
            try:
                traced = _traced_phases(sub.steps, sub.traces[0])
            except DsprofError:  # a trace cut short by a killed rank: step times still compare
                traced = None
        rows.append(
            {
                "rank": r,
                "step_ns": float(steady["duration_ns"].median()),
                "steps": len(sub.steps),
                **(traced or {}),
            }
        )
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "source"])
    with_trace = bool(len(df)) and df["iteration_ns"].notna().all()
    if not with_trace:
        for c in ("iteration_ns", *PHASE_COLUMNS):
            df[c] = np.nan
        df["own_ns"] = df["step_ns"]
    df["source"] = "trace" if with_trace else "steps"
    return df.reset_index(drop=True)


PHASE_NAMES = {"compute_ns": "compute", "data_ns": "data loading", "collective_ns": "collectives"}


def _per_rank(df: pd.DataFrame, column: str) -> str:
    """'0: 1.2, 1: 33.0' (ms) for evidence that names every rank."""
    return ", ".join(
        f"{int(r)}: {v / NS_PER_MS:.3g}" for r, v in zip(df["rank"], df[column], strict=True)
    )


def straggler_findings(run: RunData, medium: float, high: float) -> list[Finding]:
    """The straggler of a dsprof multi-rank job: the rank with the most time of its own.

    excess = (own of the slowest rank - median own of the others) / the slowest rank's
    iteration (its step without a trace): the share of every iteration the other ranks wait.
    The phase is the one (compute, data loading, collectives) where the slow rank exceeds the
    median of the others the most. `medium` / `high` are the straggler analyzer's thresholds.
    """
    df = rank_phases(run)
    if len(df) < 2:
        return []
    slow_i = int(df["own_ns"].to_numpy().argmax())
    slow = df.iloc[slow_i]
    others = df.drop(index=slow_i)
    base = slow["iteration_ns"] if df["source"].iloc[0] == "trace" else slow["step_ns"]
    lag = float(slow["own_ns"] - others["own_ns"].median())
    excess = lag / max(float(base), 1.0)
    severity = severity_for(excess, medium, high)
    if severity is None:
        return []
    rank = int(slow["rank"])
    own_mean = float(df["own_ns"].mean())
    evidence = [
        Evidence(metric="slow_rank", value=f"rank {rank}", source=f"ranks/{rank}/"),
        Evidence(metric="slow_rank_own_ms", value=ms(slow["own_ns"]), unit="ms"),
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
        Evidence(
            metric="per_rank_step_ms",
            value=_per_rank(df, "step_ns"),
            unit="ms",
            source="ranks/<r>/metrics/steps.parquet",
        ),
        Evidence(metric="ranks", value=len(df), unit="count"),
    ]
    phase = "unknown (no trace on every rank: compute, data and collectives not split)"
    if df["source"].iloc[0] == "trace":
        deltas = {c: float(slow[c] - others[c].median()) for c in PHASE_COLUMNS}
        phase = PHASE_NAMES[max(deltas, key=lambda c: deltas[c])]
        w = "per iteration over the traced steps"
        evidence += [
            Evidence(metric="phase", value=phase),
            *(
                Evidence(
                    metric=f"{PHASE_NAMES[c].split()[0]}_delta_ms", value=ms(d), unit="ms", window=w
                )
                for c, d in deltas.items()
            ),
            Evidence(
                metric="per_rank_iteration_ms",
                value=_per_rank(df, "iteration_ns"),
                unit="ms",
                window=w,
                source="steps.parquet + trace",
            ),
            Evidence(
                metric="per_rank_collective_ms",
                value=_per_rank(df, "collective_ns"),
                unit="ms",
                window=w,
                source="trace",
            ),
            Evidence(
                metric="per_rank_data_ms",
                value=_per_rank(df, "data_ns"),
                unit="ms",
                window=w,
                source="trace",
            ),
        ]
        detail = (
            f"The other ranks wait for rank {rank} in collectives: "
            f"{ms(others['collective_ns'].median())} ms per iteration against "
            f"{ms(slow['collective_ns'])} ms on rank {rank}. Balance its work or data, or fix "
            "its host or device."
        )
    else:
        detail = "Every collective waits for the slowest rank; balance its work or data."
    return [
        Finding(
            category="straggler",
            severity=severity,
            title=(
                f"rank {rank} is the straggler: {ms(slow['own_ns'])} ms of its own work per "
                f"{'iteration' if df['source'].iloc[0] == 'trace' else 'step'} against "
                f"{ms(others['own_ns'].median())} ms on the other {len(others)} rank(s) "
                f"(+{ms(lag)} ms, {excess:.0%} of each iteration), in {phase}"
            ),
            impact=clamp01(excess),
            evidence=evidence,
            recipes=[],
            analyzer="straggler",
            detail=detail,
        )
    ]
