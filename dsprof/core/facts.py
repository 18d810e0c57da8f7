"""RunFacts: what several consumers need to know about a run, decided once.

Built when a run is first asked for its facts (dsprof.store.facts.build_facts, behind
RunData.facts) from its typed documents (run.json, child.json), its tables and its traces; a bare
trace (`dsprof analyze TRACE`, no run.json) gets facts too, from the trace alone. Analyzers,
recipes, the report and the dashboard read these fields instead of deriving them again, so
they cannot disagree (the cpu-threads analyzer and the threads recipe use one core count).
No torch, no pandas here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dsprof.core.manifest import StepSummary

# cuda: NVIDIA (CUDA/CUPTI); rocm: AMD through HIP (torch's "cuda" device on a ROCm build);
# accelerator: another device (MTIA, XPU, HPU, MPS...); cpu: none seen
DeviceKind = Literal["cuda", "rocm", "accelerator", "cpu"]


class Device(BaseModel):
    """The accelerator a run had (or none), and where that was read."""

    model_config = ConfigDict(frozen=True)

    kind: DeviceKind = "cpu"
    vendor: str | None = Field(default=None, description="NVIDIA, AMD, Intel, Meta (MTIA), ...")
    names: tuple[str, ...] = Field(default=(), description="device names as recorded")
    source: str = Field(default="", description="what decided it, for evidence")

    @property
    def label(self) -> str:
        """'NVIDIA CUDA (NVIDIA H100 80GB HBM3)', 'CPU', ... for a person."""
        if self.kind == "cpu":
            return "CPU"
        what = {"cuda": "CUDA", "rocm": "ROCm/HIP", "accelerator": "accelerator"}[self.kind]
        name = f" ({', '.join(sorted(set(self.names)))})" if self.names else ""
        return f"{self.vendor or ''} {what}{name}".strip()


class RunFacts(BaseModel):
    """Facts about one run (or a set of bare traces) that two or more consumers need."""

    model_config = ConfigDict(frozen=True)

    device: Device = Field(default_factory=Device)
    uses_device: bool = Field(
        default=False,
        description=(
            "the work ran on a device, not the CPU: GPU kernels or copies in its traces; else "
            "step outputs on a non-CPU device (child.json device_types); else, with neither "
            "traces nor outputs, a GPU in run.json. False: the CPU analyzers own the run. A "
            "trace whose only device events are another accelerator's (MTIA) stays CPU work "
            "here, as the analyzers have always read it; uses_accelerator says it used one."
        ),
    )
    uses_accelerator: bool = Field(
        default=False,
        description=(
            "uses_device, or another accelerator's events in a trace (MTIA, XPU, ...), or GPU "
            "runtime calls without the device's timeline: the CPU analyzers then stay silent"
        ),
    )
    usable_cores: float | None = Field(
        default=None,
        description=(
            "cores the run could use: child.json usable_cpus (affinity and cgroup quota), capped "
            "at the physical cores (torch's default pool size); else run.json's core counts"
        ),
    )
    usable_cores_source: str = ""
    torch_threads: int | None = Field(default=None, description="torch's intra-op threads")
    param_dtypes: tuple[str, ...] = Field(
        default=(), description="parameter dtypes of the root modules (child.json)"
    )
    root_modules: tuple[str, ...] = Field(
        default=(), description="class names of the outermost modules the steps called"
    )
    main_module: str | None = Field(
        default=None, description="the root module class most steps belong to (the model)"
    )
    steps: StepSummary = Field(default_factory=StepSummary, description="the run's key numbers")
    steps_source: str = Field(default="", description="run.json summary, or the run's tables")

    @property
    def uses_cuda(self) -> bool:
        """The work ran on a GPU that torch drives as `cuda` (NVIDIA CUDA or AMD ROCm/HIP)."""
        return self.uses_device and self.device.kind in ("cuda", "rocm")

    @property
    def usable_cores_measured(self) -> bool:
        """True when the core count was measured in the run's process (affinity and quota)."""
        return self.usable_cores_source.startswith(USABLE_FROM_CHILD)


# the evidence source of a core count the child measured (affinity and cgroup quota)
USABLE_FROM_CHILD = "child.json usable_cpus"
