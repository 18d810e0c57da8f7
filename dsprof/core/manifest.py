"""run.json: the manifest of one run folder."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dsprof.core.steps import StepStats, iteration_stats

SCHEMA_VERSION = 1

# what made the run: dsprof run (a script or -m module), dsprof.profile(), dsprof trace PID,
# dsprof load, dsprof watch
RunKind = Literal["script", "module", "api", "trace", "load", "watch"]
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


# how a run's steps were found (StepSummary.step_source, the `source` column of steps.parquet)
STEP_SOURCES = {
    "module": "calls of the model (module hooks)",
    "forward": "calls of the model's forward() made directly (its layers grouped per call)",
    "script": "Python calls into a TorchScript module (global hooks)",
    "marker": "dsprof.step() markers",
}


class StepSummary(StepStats):
    """A run's key numbers: its step statistics (dsprof.core.steps) and its resource peaks and
    means. Kept in run.json so listings need not read parquet; a fix trial's metrics too."""

    # how the steps were found (a key of STEP_SOURCES; dsprof/runner/steps.py); None without
    # steps. `module` (StepStats) names the model whose calls they are
    step_source: str | None = None
    threads: int | None = Field(
        default=None, description="threads the steps ran on (several: a thread pool's calls)"
    )
    peak_rss_bytes: int | None = None
    peak_cuda_allocated_bytes: int | None = None
    mean_cpu_pct: float | None = Field(
        default=None, description="process tree, 100 = one core; the first sample left out"
    )
    mean_gpu_util_pct: float | None = None

    def with_resources_of(self, other: StepSummary | None) -> StepSummary:
        """These step figures with other's resource figures (peaks and means)."""
        if other is None:
            return self
        return self.model_copy(update={f: getattr(other, f) for f in RESOURCE_FIELDS})


RESOURCE_FIELDS = (
    "peak_rss_bytes",
    "peak_cuda_allocated_bytes",
    "mean_cpu_pct",
    "mean_gpu_util_pct",
)


def summarize_tables(steps: Any, host: Any, gpu: Any, cuda_memory: Any, warmup: int) -> StepSummary:
    """A run's key numbers from its tables (steps, host, gpu, cuda_memory; None when absent).

    Steps: iteration_stats (dsprof.core.steps) after `warmup` iterations. Mean CPU leaves out the first
    host sample, whose percentage has no full interval behind it. Peak CUDA memory is the
    allocator's own peak, else the largest allocation seen at a step end.
    """
    summary = StepSummary(**iteration_stats(steps, warmup).model_dump(exclude={"steps_measured"}))
    if host is not None and len(host) and "proc_rss_bytes" in host:
        summary.peak_rss_bytes = int(host["proc_rss_bytes"].max())
        if len(host) > 1 and "proc_cpu_pct" in host:
            summary.mean_cpu_pct = _mean(host["proc_cpu_pct"].iloc[1:])
    if cuda_memory is not None and len(cuda_memory):
        for column in ("allocated_peak_bytes", "allocated_bytes"):
            if column in cuda_memory and cuda_memory[column].notna().any():
                summary.peak_cuda_allocated_bytes = int(cuda_memory[column].max())
                break
    if gpu is not None and len(gpu) and "util_gpu_pct" in gpu:
        summary.mean_gpu_util_pct = _mean(gpu["util_gpu_pct"])
    return summary


def _mean(column: Any) -> float | None:
    value = column.mean()
    return None if value != value else float(value)  # NaN: sampled, but never measured


class RunManifest(BaseModel):
    """The run folder's manifest (run.json). Times are Unix-epoch int nanoseconds."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    # trace: an on-demand capture of a running service (dsprof trace); watch: dsprof watch --for
    kind: RunKind = "script"
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

    @property
    def warmup_steps(self) -> int:
        """Steps the run's statistics leave out at the start (options.warmup_steps, default 1)."""
        value = self.options.get("warmup_steps", 1)
        return value if isinstance(value, int) else 1
