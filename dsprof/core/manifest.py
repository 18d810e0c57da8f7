"""run.json: the manifest of one run folder."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

RunStatus = Literal["running", "ok", "failed", "interrupted"]


class CollectorStatus(BaseModel):
    """Whether a collector ran, and if not, why: a missing GPU is a note, not an error."""

    ok: bool
    reason: str = ""
    detail: dict[str, object] = Field(default_factory=dict)


class GpuInfo(BaseModel):
    """One GPU as NVML or torch.cuda names it."""

    index: int
    name: str
    memory_total_bytes: int | None = None
    uuid: str | None = None


class Environment(BaseModel):
    """Where the run happened."""

    python: str
    platform: str
    hostname: str
    cpu_model: str
    cpu_count_logical: int
    cpu_count_physical: int | None = None
    usable_cores: int | None = None
    memory_total_bytes: int | None = None
    torch: str | None = None
    cuda: str | None = None
    cudnn: int | None = None
    driver: str | None = None
    gpus: list[GpuInfo] = Field(default_factory=list)
    torch_num_threads: int | None = None
    env_vars: dict[str, str] = Field(default_factory=dict)


class StepSummary(BaseModel):
    """Key numbers over the steps, kept in run.json so listings need not read parquet."""

    count: int = 0
    p50_ns: int | None = None
    p99_ns: int | None = None
    mean_ns: int | None = None
    throughput_per_s: float | None = None
    peak_rss_bytes: int | None = None
    peak_cuda_allocated_bytes: int | None = None
    mean_cpu_pct: float | None = None
    mean_gpu_util_pct: float | None = None


class RunManifest(BaseModel):
    """The run folder's manifest (run.json). Times are Unix-epoch int nanoseconds."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    kind: Literal["script", "module", "api", "trace", "load"] = "script"
    argv: list[str]
    target: str = Field(description="the script path or module name that was run")
    cwd: str
    start_ns: int
    end_ns: int | None = None
    status: RunStatus = "running"
    exit_code: int | None = None
    error: str | None = None
    environment: Environment | None = None
    collectors: dict[str, CollectorStatus] = Field(default_factory=dict)
    options: dict[str, object] = Field(default_factory=dict)
    summary: StepSummary = Field(default_factory=StepSummary)
    # trial runs made by `dsprof fix`
    parent_run: str | None = None
    recipes: list[str] = Field(default_factory=list)
    # multi-rank jobs: one entry per rank folder under ranks/
    world_size: int | None = None
    ranks: list[int] = Field(default_factory=list)
