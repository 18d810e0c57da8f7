"""communication-bound across the ranks of a dsprof job: the collective time every rank pays.

A rank's collective time is the transfer itself plus waiting for slower ranks. Each rank's own
trace cannot tell the two apart; across ranks they separate: the rank that waits least
(usually the straggler) spends about the transfer time alone, and whatever the other ranks spend
beyond it is waiting (the straggler's cost, reported by the straggler analyzer). So the job's
communication share is the smallest collective share over its ranks (dsprof.analyzers.
rank_phases: per iteration of the traced steps, or per torch.distributed call), and the finding
names how much of the other ranks' collective time is waiting.

Thresholds are the communication-bound analyzer's (COMM_LOW / COMM_MEDIUM / COMM_HIGH).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dsprof.analyzers.rank_phases import PER, rank_phases
from dsprof.analyzers.trace_scope import clamp01, ms, severity_for
from dsprof.core.findings import Evidence, Finding

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData


def job_communication_findings(
    run: RunData, low: float, medium: float, high: float, recipes: list[str]
) -> list[Finding]:
    """One job-level finding: the least collective share over ranks, and the others' waiting."""
    df = rank_phases(run)
    if len(df) < 2 or str(df["source"].iloc[0]) == "steps":
        return []
    source = str(df["source"].iloc[0])
    per = PER[source]
    shares = (df["collective_ns"] / df["iteration_ns"].clip(lower=1.0)).to_numpy()
    least = int(np.argmin(shares))
    share = float(shares[least])
    severity = severity_for(share, medium, high, low)
    if severity is None:
        return []
    row = df.iloc[least]
    waiting = float(np.median(np.delete(shares, least))) - share
    by_rank = ", ".join(f"{int(r)}: {s:.0%}" for r, s in zip(df["rank"], shares, strict=True))
    w = f"per {per}" + (" over the traced steps" if source == "trace" else "")
    title = (
        f"Collectives take {share:.0%} of each {per} even on the rank that waits least "
        f"(rank {int(row['rank'])}: {ms(row['collective_ns'])} of {ms(row['iteration_ns'])} ms)"
    )
    if waiting >= medium:
        title += f"; the other ranks' further {waiting:.0%} is waiting for a slower rank"
    return [
        Finding(
            category="communication-bound",
            severity=severity,
            title=title,
            impact=clamp01(share),
            evidence=[
                Evidence(
                    metric="comm_share",
                    value=round(share, 4),
                    unit="fraction",
                    threshold=medium,
                    window=w,
                    source=source,
                ),
                Evidence(metric="per_rank_comm_share", value=by_rank, window=w, source=source),
                Evidence(
                    metric="median_other_waiting_share",
                    value=round(max(waiting, 0.0), 4),
                    unit="fraction",
                    window=w,
                ),
                Evidence(metric="ranks", value=len(df), unit="count"),
            ],
            recipes=recipes,
            analyzer="communication-bound",
            detail=(
                "The least any rank spends in collectives is the transfer itself; the rest is "
                "waiting for the slowest rank (see the straggler finding). Per-rank "
                "communication findings include that waiting."
            ),
        )
    ]
