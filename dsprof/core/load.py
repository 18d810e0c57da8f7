"""load.json: the summary of a `dsprof load` run (per-request rows are in metrics/requests.parquet).

A load run is one or more steps at an offered rate (open loop) or a concurrency (closed loop).
Latency counts from each request's scheduled send time, so a stalled service shows in the tail
even when the generator could not send while it waited (coordinated omission corrected).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

LOAD_SCHEMA_VERSION = 1

LoadMode = Literal["open-loop", "closed-loop"]
SloStatus = Literal["pass", "fail", "not-measured"]


class LatencySummary(BaseModel):
    """Percentiles of one class's latency (from its HDR histogram), in milliseconds."""

    count: int
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None
    # the class's HDR histogram, encoded (base64, compressed): mergeable across workers and runs
    hdr: str | None = None


class ScheduleLag(BaseModel):
    """How late the generator sent requests against their schedule."""

    p99_ms: float
    max_ms: float
    late_share: float = Field(description="share of requests sent later than the allowed lag")


class LoadStep(BaseModel):
    """One offered rate (or concurrency) held for a while."""

    index: int
    mode: LoadMode
    offered_rate_per_s: float | None = None
    concurrency: int | None = None
    start_ns: int
    end_ns: int
    requests: int
    completed: int
    errors: int
    timeouts: int
    errors_by_status: dict[str, int] = Field(default_factory=dict)
    achieved_rate_per_s: float
    goodput_per_s: float | None = None
    goodput_share: float | None = None
    latency: LatencySummary
    classes: dict[str, LatencySummary] = Field(default_factory=dict)
    schedule_lag: ScheduleLag | None = None
    valid: bool = True
    invalid_reason: str | None = None
    mean_cpu_pct: float | None = None
    mean_gpu_util_pct: float | None = None
    max_gpu_memory_used_bytes: int | None = None
    slos: list[SloResult] = Field(default_factory=list)


class SloResult(BaseModel):
    """One SLO checked against a measurement: the value, its 95 % interval and the verdict."""

    spec: str = Field(description="as written, e.g. p99<100ms")
    metric: str
    op: Literal["<", ">", "<=", ">=", "range"]
    target: float | None = None
    low: float | None = None
    high: float | None = None
    unit: str = ""
    measured: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    status: SloStatus
    note: str = ""


class MaxRateSearch(BaseModel):
    """`--find-max-rate`: the highest offered rate that met every SLO, and the steps tried."""

    max_rate_per_s: float | None
    tried: list[tuple[float, bool]] = Field(default_factory=list)
    precision: float = Field(description="relative width of the final bracket")
    note: str = ""


class LoadSummary(BaseModel):
    """The load.json document."""

    schema_version: int = LOAD_SCHEMA_VERSION
    target: str
    url: str
    mode: LoadMode
    arrival: str | None = None
    burstiness: float | None = None
    workers: int = 1
    client: str
    timeout_s: float
    slo_specs: list[str] = Field(default_factory=list)
    steps: list[LoadStep] = Field(default_factory=list)
    max_rate: MaxRateSearch | None = None
    status: Literal["ok", "failed", "interrupted", "invalid"] = "ok"
    slo_status: SloStatus | None = None
    error: str | None = None
    server: dict[str, object] = Field(default_factory=dict)


LoadStep.model_rebuild()
