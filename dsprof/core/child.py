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
    capture_step_bytes: int | None = Field(
        default=None, description="bytes of tensors a captured step keeps (None: the default)"
    )
    capture_run_bytes: int | None = Field(
        default=None, description="bytes of captured tensors a run keeps (None: the default)"
    )
    stdout_line_buffered: bool = Field(
        default=False,
        description="dsprof's stdout is a terminal: the script's stdout is line-buffered, as "
        "python's is on a terminal (on a pipe or a file it stays block-buffered, as python's)",
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
    """A module the script called at top level; the model is the one with the most call time."""

    # "class" in the document; class_name in Python
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, extra="allow")

    index: int | None = Field(default=None, description="its `root` in the live step rows")
    class_name: str = Field(default="", alias="class")
    qualname: str = ""
    calls: int = Field(default=0, description="calls that returned (its steps)")
    failed_calls: int = Field(default=0, description="calls that raised")
    total_ns: int | None = Field(default=None, description="summed time of its calls")
    sources: list[str] = Field(
        default_factory=list, description="how its calls were timed (module, forward, script)"
    )
    threads: int | None = Field(default=None, description="threads it was called from")
    params: int = 0
    param_dtypes: list[str] = Field(default_factory=list)
    params_requiring_grad: int | None = None
    training_module_classes: dict[str, int] = Field(default_factory=dict)
    inputs: list[TensorSpec] = Field(
        default_factory=list, description="tensor inputs of its first call"
    )
    call_site: CallSite | None = None


class ModelHandle(BaseModel):
    """An expression one of the script's frames reaches the model by, at that frame's line."""

    file: str = ""
    line: int = 0
    function: str = ""
    var: str = Field(default="", description="the frame's variable: `extractor`")
    expr: str = Field(default="", description="the model through it: `extractor.model`")


class ModelSeen(BaseModel):
    """What the child saw of a root module at its first call (dsprof/runner/model_facts.py)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, extra="allow")

    class_name: str = Field(default="", alias="class")
    autocast: dict[str, str] = Field(
        default_factory=dict, description="autocast the script called it under: {device: dtype}"
    )
    decode: bool | None = Field(
        default=None, description="first called from inside generate() (KV-cache decode steps)"
    )
    handles: list[ModelHandle] = Field(default_factory=list, description="innermost frame first")


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


class ModelInfo(BaseModel):
    """The root module whose calls are the run's steps: the one that holds most of the work."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, extra="allow")

    index: int
    class_name: str = Field(default="", alias="class")
    qualname: str = ""
    calls: int = 0
    failed_calls: int = 0
    time_share: float = Field(default=1.0, description="its share of all top-level call time")
    threads: int = Field(default=1, description="threads its calls ran on")
    call_site: CallSite | None = None


class WorkerProcess(BaseModel):
    """A forked worker process that called a module (its first call): model work outside the run."""

    model_config = ConfigDict(extra="allow")

    pid: int
    ppid: int | None = None
    module: str = ""
    ts_ns: int | None = None


class SampledTensor(BaseModel):
    """A captured tensor that was over the capture budget: which rows were kept."""

    model_config = ConfigDict(extra="allow")

    step: int
    kind: str = Field(default="tensors", description="tensors (outputs) or inputs")
    name: str = ""
    shape: list[int] = Field(default_factory=list)
    dtype: str = ""
    sampled: dict[str, int] = Field(
        default_factory=dict, description="rows kept, rows_of (in the whole tensor), row_stride"
    )


class OutputsInfo(BaseModel):
    """What outputs/ holds: the steps captured, their bytes, the budget and what was sampled."""

    model_config = ConfigDict(extra="allow")

    steps: list[int] = Field(default_factory=list)
    bytes: int = 0
    step_bytes_cap: int | None = None
    run_bytes_cap: int | None = None
    sampled: list[SampledTensor] = Field(default_factory=list)


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
    step_source: str | None = Field(
        default=None,
        description="how the steps were found: module, forward, script (dsprof/runner/steps.py) "
        "or marker; None: no steps",
    )
    model: ModelInfo | None = Field(default=None, description="None: no module was called")
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
    worker_processes: list[WorkerProcess] = Field(
        default_factory=list, description="forked processes that called modules (first call)"
    )
    outputs: OutputsInfo | None = Field(default=None, description="the captured outputs")
    profiler: ProfilerInfo | None = Field(default=None, description="None with --no-trace")
    recipes: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="recipes installed in a trial, with their status"
    )
    first_calls: list[ModelSeen] = Field(
        default_factory=list, description="each root module as seen at its first call"
    )
    generate_calls: int = Field(default=0, description="transformers generate() calls made")

    def model_seen(self, class_name: str | None = None) -> ModelSeen | None:
        """The first-call facts of the root module of this class (default: the model's)."""
        wanted = class_name or (self.model.class_name if self.model is not None else None)
        for m in self.first_calls:
            if wanted is None or m.class_name == wanted:
                return m
        return None
