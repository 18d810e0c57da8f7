"""Documents of `dsprof trace` (on-demand captures of a running service) and `dsprof watch`.

    CaptureInfo    capture.json: how an on-demand capture went (asked, started, ended, steps,
                   partial or not and why), written by the agent inside the service and completed
                   by `dsprof trace`
    CaptureRequest what `dsprof trace` asks of the agent over the control socket (not persisted)
    RequestCounters the service's request counters as the agent reports them (watch, /metrics)

Times are Unix-epoch int nanoseconds. No torch imports here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CAPTURE_SCHEMA_VERSION = 1
# the JSON-lines protocol on the control socket; an agent and a client of different protocol
# versions refuse each other with a message naming both
PROTOCOL_VERSION = 1

CaptureStatus = Literal["ok", "partial", "failed"]


class CaptureRequest(BaseModel):
    """One on-demand capture: `steps` model steps, or `duration_s` seconds, whichever is given."""

    model_config = ConfigDict(extra="forbid")

    run_dir: str = Field(description="absolute path of the run folder the agent writes into")
    steps: int | None = Field(default=None, ge=1)
    duration_s: float | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=60.0, gt=0, description="give up waiting for steps after")
    record_shapes: bool = True
    requested_ns: int = 0
    requester_pid: int | None = None


class CaptureInfo(BaseModel):
    """capture.json: what happened to one on-demand capture inside the service."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = CAPTURE_SCHEMA_VERSION
    pid: int = Field(description="the service process that took the capture")
    mode: Literal["steps", "duration"]
    steps_wanted: int | None = None
    duration_s: float | None = None
    requested_ns: int = 0
    started_ns: int | None = Field(default=None, description="profiler recording began")
    ended_ns: int | None = Field(default=None, description="profiler recording ended")
    steps_traced: int = Field(default=0, description="model steps wholly inside the recording")
    status: CaptureStatus = "ok"
    reason: str | None = Field(default=None, description="why partial or failed, in words")
    trace_file: str | None = None
    threads: str = Field(default="all", description="which threads torch.profiler recorded")
    record_shapes: bool = True
    malloc_trim_after_trace: bool = False
    service_run: str | None = Field(
        default=None, description="the service's own run folder when it runs under dsprof run"
    )


class HistogramCounts(BaseModel):
    """Cumulative Prometheus-style buckets: counts[i] requests took at most bounds_s[i]."""

    bounds_s: list[float]
    counts: list[int]
    count: int = 0
    sum_s: float = 0.0


class RequestCounters(BaseModel):
    """Cumulative request counters of a service (since the agent started), with their time."""

    ts_ns: int
    requests_total: int = 0
    errors_total: int = 0
    latency: HistogramCounts
    queue: HistogramCounts | None = None
    waiting: int | None = Field(default=None, description="requests queued now")
