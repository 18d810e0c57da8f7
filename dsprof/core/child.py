"""The two documents between the parent and the child process of a run.

    ChildConfig  logs/child-config.json: what the parent asks of the child (target, steps, recipes)
    ChildInfo    child.json: what the child saw of the script's objects and of torch

Both carry schema_version and are read and written through dsprof.store (an unknown version is a
clear error naming the file). Documents written before they were versioned carry no
schema_version; their shape is version 1, so a missing version reads as 1.
No torch imports here: the child fills these from torch, everything else reads them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CHILD_CONFIG_SCHEMA_VERSION = 1
CHILD_INFO_SCHEMA_VERSION = 1


class ChildConfig(BaseModel):
    """What the parent asks of the child (logs/child-config.json, named by DSPROF_CHILD_CONFIG)."""

    # a key the child does not know is a parent/child mismatch, not something to ignore
    model_config = ConfigDict(extra="forbid")

    schema_version: int = CHILD_CONFIG_SCHEMA_VERSION
    target: str = Field(default="", description="the script path or module name")
    args: list[str] = Field(default_factory=list)
    module: bool = Field(default=False, description="run target as `python -m`")
    run_dir: str = Field(default="", description="the run folder the child writes into")
    job_dir: str | None = Field(
        default=None,
        description="a rank of a multi-rank job: the job folder; the child writes ranks/<RANK>/",
    )
    warmup_steps: int = 1
    active_steps: int = 5
    trace: bool = True
    capture_steps: int = 3
    recipes: list[str] = Field(default_factory=list, description="recipes a trial installs")
    recipe_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    max_steps: int | None = None
    trace_hold_file: str | None = Field(
        default=None,
        description="the trace window waits until this file exists (dsprof load: mid-load)",
    )
    on_demand: bool = Field(
        default=False, description="run the on-demand agent (dsprof trace PID) in the child"
    )


class CallSite(BaseModel):
    """Where the script calls a root module: the first frame in the user's own code."""

    file: str | None = None
    line: int | None = None
    function: str | None = None


class TensorSpec(BaseModel):
    """A tensor input or output described without its data."""

    name: str = ""
    shape: list[int] = Field(default_factory=list)
    dtype: str = ""


class RootModule(BaseModel):
    """An outermost nn.Module the script called (each call is a step)."""

    # "class" in the document; class_name in Python
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, extra="allow")

    class_name: str = Field(default="", alias="class")
    qualname: str = ""
    calls: int = 0
    params: int = 0
    param_dtypes: list[str] = Field(default_factory=list)
    params_requiring_grad: int | None = None
    training_module_classes: dict[str, int] = Field(default_factory=dict)
    inputs: list[TensorSpec] = Field(
        default_factory=list, description="tensor inputs of its first call"
    )
    call_site: CallSite | None = None


class DataLoaderInfo(BaseModel):
    """A DataLoader the script built, with its settings and where."""

    model_config = ConfigDict(extra="allow")

    num_workers: int = 0
    pin_memory: bool = False
    batch_size: int | None = None
    persistent_workers: bool = False
    prefetch_factor: int | None = None
    file: str | None = None
    line: int | None = None


class ProfilerInfo(BaseModel):
    """torch.profiler's window in the child and whether its trace was written."""

    model_config = ConfigDict(extra="allow")

    activities: list[str] = Field(default_factory=list)
    wait: int = 1
    active: int = 5
    record_shapes: bool = True
    profile_memory: bool = False
    trace_file: str | None = None
    error: str | None = None
    malloc_trim_after_trace: bool = False


class ChildInfo(BaseModel):
    """child.json: what the child observed about the script's objects and about torch.

    Every field has a default: a child killed before its end writes nothing, and tests build the
    few fields an analyzer reads.
    """

    # fields a newer child adds are kept (and shown by `model_extra`), as in run.json
    model_config = ConfigDict(extra="allow")

    schema_version: int = CHILD_INFO_SCHEMA_VERSION
    status: Literal["ok", "failed", "interrupted"] | None = None
    exit_code: int | None = None
    error: str | None = None
    end_ns: int | None = None
    torch: str | None = None
    cuda: str | None = None
    hip: str | None = Field(default=None, description="torch.version.hip on a ROCm build")
    cudnn: int | None = None
    cuda_available: bool = False
    cuda_devices: list[str] = Field(default_factory=list)
    torch_num_threads: int | None = None
    torch_num_interop_threads: int | None = None
    device_types: list[str] = Field(
        default_factory=list, description="device types of the tensors in step outputs"
    )
    steps_seen: int = 0
    step_mode: str | None = Field(default=None, description="'module' or 'marker'")
    autograd_enabled_steps: int | None = Field(default=None, description="None: not recorded")
    training_modules: list[str] | None = Field(
        default=None,
        description="qualified names in training mode during steps (first 50); None: not recorded",
    )
    root_modules: list[RootModule] = Field(default_factory=list)
    root_inputs: dict[str, list[TensorSpec]] = Field(default_factory=dict)
    training_module_classes: dict[str, int] = Field(default_factory=dict)
    usable_cpus: float | None = Field(
        default=None, description="cores the process may use: affinity bounded by cgroup quota"
    )
    cpu_affinity: list[int] = Field(default_factory=list)
    cgroup_cpu_quota: float | None = None
    call_site: CallSite | None = None
    dataloaders: list[DataLoaderInfo] = Field(default_factory=list)
    profiler: ProfilerInfo | None = Field(default=None, description="None with --no-trace")
    recipes: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="recipes installed in a trial, with their status"
    )
