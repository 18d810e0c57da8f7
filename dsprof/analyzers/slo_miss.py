"""slo-miss: a latency SLO failed under load, and where the slow requests spent their time.

Detects
    A `dsprof load` step (load.json) whose latency SLO failed, explained from the service side:
    queueing (the service is saturated: the model is busy most of the time, so requests wait
    for earlier ones), batch waiting (requests wait in the batcher's queue while the model is
    mostly idle: the batch wait, not the compute, costs them), compute (one model call alone
    takes a large share of the latency), or host work (time outside the model call: framework,
    serialisation, tokenisation, the event loop).
Signal
    requests.parquet rows of the failing step: latency from the scheduled send time, and the
    service's Server-Timing `queue` and `compute` durations when it sends them (the example
    service and any DynamicBatcher service can); steps.parquet (the service's model calls, same
    clock) for the model's busy share of the step's window and the median call duration;
    the requests above the step's p90 are the "tail" that is decomposed.
Thresholds
    SATURATED_BUSY_SHARE = 0.85: the model computed for 85 % of the window. Open-loop queueing
    grows as 1/(1 - utilisation): at 0.85 a queue is ~6 services long on average (M/M/1), so the
    wait, not the call, makes the tail (Harchol-Balter, Performance Modeling and Design of
    Computer Systems, ch. 14).
    DOMINANT_SHARE = 0.5: a component is the cause when it is at least half the tail latency.
    Severity: high when the failing SLO was missed by more than MISS_HIGH (2x its target),
    else medium.
Evidence
    the failing SLO and its measured value, achieved vs offered rate, the model's busy share and
    median call, tail latency split into queue / compute / outside (ms and share), the process's
    CPU use during the step.
False positives
    Without Server-Timing the split rests on steps.parquet alone: queue vs batch waiting is then
    inferred from the busy share. A service that does its work outside nn.Module calls (no
    steps) gets the latency facts only. The generator's own lag is excluded (latency counts from
    the schedule, but a step whose generator fell behind is marked invalid and not analysed).
References
    wrk2 (coordinated omission); Triton Inference Server dynamic batching and priority docs;
    vLLM serving benchmark goodput.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from dsprof.core.findings import Evidence, Finding

if TYPE_CHECKING:
    from dsprof.core.load import LoadStep, SloResult
    from dsprof.store.run_store import RunData

SATURATED_BUSY_SHARE = 0.85
DOMINANT_SHARE = 0.5
MISS_HIGH = 2.0
TAIL_QUANTILE = 0.90

CAUSES = {
    "queueing": (
        "queueing: the service is saturated (the model computes {busy:.0%} of the time), so "
        "requests wait behind earlier ones",
        ["batching", "int8-dynamic", "compile"],
    ),
    "batch-waiting": (
        "batch waiting: slow requests spend {queue:.0%} of their latency queued for a batch while "
        "the model is busy only {busy:.0%} of the time (lower max_wait or the batch size)",
        [],
    ),
    "compute": (
        "compute: the model call itself is {compute:.0%} of the tail latency",
        ["int8-dynamic", "bf16", "compile"],
    ),
    "host-work": (
        "host work: {outside:.0%} of the tail latency is spent outside the model call "
        "(framework, serialisation, tokenisation, event loop)",
        [],
    ),
}


class SloMissAnalyzer:
    """Explain a failed latency SLO of a load run from the service-side data."""

    name: ClassVar[str] = "slo-miss"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("requests",)

    def analyze(self, run: RunData) -> list[Finding]:
        summary = run.load
        if summary is None or run.requests is None:
            return []
        findings = []
        for step in summary.steps:
            failed = [r for r in step.slos if r.status == "fail" and r.unit == "ms"]
            if not failed or not step.valid:
                continue
            rows = run.requests[run.requests["step"] == step.index]
            finding = _explain(step, failed[0], rows, run.steps, run.host)
            if finding is not None:
                findings.append(finding)
        # one finding per load run: the highest offered rate that failed says the most
        return findings[-1:]


def _explain(
    step: LoadStep,
    slo: SloResult,
    rows: pd.DataFrame,
    steps: pd.DataFrame | None,
    host: pd.DataFrame | None,
) -> Finding | None:
    ok = rows[rows["latency_ns"].notna()]
    if not len(ok):
        return None
    latency = ok["latency_ns"].astype("float64")
    tail = ok[latency >= latency.quantile(TAIL_QUANTILE)]
    tail_ms = float(tail["latency_ns"].astype("float64").median()) / 1e6
    window = (step.start_ns, step.end_ns)
    busy, call_ms = _model_busy(steps, window)
    queue_ms = _median_ms(tail, "server_queue_ns")
    compute_ms = _median_ms(tail, "server_compute_ns")
    if compute_ms is None and call_ms is not None:
        compute_ms = call_ms
    shares = {
        "queue": (queue_ms or 0.0) / tail_ms if queue_ms is not None else None,
        "compute": min((compute_ms or 0.0) / tail_ms, 1.0) if compute_ms is not None else None,
    }
    if queue_ms is not None and compute_ms is not None:
        shares["outside"] = max(tail_ms - queue_ms - compute_ms, 0.0) / tail_ms
    cause = _cause(busy, shares)
    if cause is None:
        return None
    template, recipes = CAUSES[cause]
    title = template.format(
        busy=busy or 0.0,
        queue=shares.get("queue") or 0.0,
        compute=shares.get("compute") or 0.0,
        outside=shares.get("outside") or 0.0,
    )
    measured, target = slo.measured or 0.0, slo.target or slo.high or 0.0
    label = f"{step.offered_rate_per_s:.3g} req/s" if step.offered_rate_per_s else "the load"
    evidence = [
        Evidence(
            metric=f"SLO {slo.spec}",
            value=round(measured, 1),
            unit="ms",
            threshold=target,
            window=label,
            source="load.json",
        ),
        Evidence(
            metric="achieved rate",
            value=round(step.achieved_rate_per_s, 2),
            unit="req/s",
            window=label,
            source="requests.parquet",
        ),
        Evidence(
            metric="tail latency (median above p90)",
            value=round(tail_ms, 1),
            unit="ms",
            window=label,
            source="requests.parquet",
        ),
    ]
    if busy is not None:
        evidence.append(
            Evidence(
                metric="model busy share",
                value=round(busy, 3),
                threshold=SATURATED_BUSY_SHARE,
                window=label,
                source="steps.parquet",
            )
        )
    if call_ms is not None:
        evidence.append(
            Evidence(
                metric="median model call",
                value=round(call_ms, 2),
                unit="ms",
                window=label,
                source="steps.parquet",
            )
        )
    for part in ("queue", "compute", "outside"):
        if shares.get(part) is not None:
            evidence.append(
                Evidence(
                    metric=f"tail {part} share",
                    value=round(shares[part] or 0, 3),
                    threshold=DOMINANT_SHARE,
                    window=label,
                    source="Server-Timing"
                    if part != "compute" or queue_ms is not None
                    else "steps.parquet",
                )
            )
    cpu = _mean_in(host, "proc_cpu_pct", window)
    if cpu is not None:
        evidence.append(
            Evidence(
                metric="service CPU",
                value=round(cpu, 1),
                unit="% of a core",
                window=label,
                source="host.parquet",
            )
        )
    impact = {
        "queueing": 1.0 - (shares.get("compute") or 0.0),
        "batch-waiting": shares.get("queue") or 0.0,
        "compute": shares.get("compute") or 0.0,
        "host-work": shares.get("outside") or 0.0,
    }[cause]
    return Finding(
        category="slo-miss",
        severity="high" if target and measured > MISS_HIGH * target else "medium",
        title=f"{slo.spec} missed at {label} ({measured:.0f} ms): {title}",
        impact=float(min(max(impact, 0.0), 1.0)),
        confidence=0.9 if queue_ms is not None else 0.6,
        evidence=evidence,
        recipes=recipes,
        analyzer=SloMissAnalyzer.name,
    )


def _cause(busy: float | None, shares: dict[str, float | None]) -> str | None:
    if busy is not None and busy >= SATURATED_BUSY_SHARE:
        return "queueing"
    queue, compute, outside = shares.get("queue"), shares.get("compute"), shares.get("outside")
    if queue is not None and queue >= DOMINANT_SHARE:
        return "batch-waiting" if busy is not None and busy < SATURATED_BUSY_SHARE else "queueing"
    if compute is not None and compute >= DOMINANT_SHARE:
        return "compute"
    if outside is not None and outside >= DOMINANT_SHARE:
        return "host-work"
    if busy is not None and compute is not None and compute < DOMINANT_SHARE:
        # the model is not saturated and the call is short: the tail waits elsewhere
        return "host-work" if queue is None else "batch-waiting"
    return None


def _model_busy(
    steps: pd.DataFrame | None, window: tuple[int, int]
) -> tuple[float | None, float | None]:
    """Share of the window the model was computing, and its median call (ms)."""
    if steps is None or not len(steps) or "start_ns" not in steps:
        return None, None
    start, end = window
    inside = steps[(steps["end_ns"] > start) & (steps["start_ns"] < end)]
    if not len(inside):
        return None, None
    clipped = np.minimum(inside["end_ns"], end) - np.maximum(inside["start_ns"], start)
    busy = float(clipped.clip(lower=0).sum()) / max(end - start, 1)
    call = float((inside["end_ns"] - inside["start_ns"]).median()) / 1e6
    return min(busy, 1.0), call


def _median_ms(rows: pd.DataFrame, column: str) -> float | None:
    if column not in rows or rows[column].isna().all():
        return None
    return float(rows[column].dropna().astype("float64").median()) / 1e6


def _mean_in(df: pd.DataFrame | None, column: str, window: tuple[int, int]) -> float | None:
    if df is None or column not in df or "ts_ns" not in df:
        return None
    inside = df[(df["ts_ns"] >= window[0]) & (df["ts_ns"] <= window[1])][column].dropna()
    return float(inside.mean()) if len(inside) else None
