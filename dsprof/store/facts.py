"""Building a run's RunFacts (dsprof.core.facts) once, from what its folder holds.

RunData.facts calls build_facts on first use and keeps the result. Sources, in order of trust:
the traces (what ran where), child.json (what the script's process saw), run.json (the machine);
for bare traces only the first exist. See RunFacts for each field's rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dsprof.core.errors import DsprofError
from dsprof.core.facts import USABLE_FROM_CHILD, Device, RunFacts
from dsprof.core.manifest import StepSummary, summarize_tables
from dsprof.core.steps import main_module

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData


def build_facts(run: RunData) -> RunFacts:
    """The facts of one run folder (or one rank's, or a set of bare traces)."""
    traces = _traces(run)
    device, uses_device, uses_accelerator = _device(run, traces)
    usable, usable_source = _usable_cores(run)
    steps, steps_source = _numbers(run)
    child = run.child
    env = run.manifest.environment if run.manifest is not None else None
    threads = child.torch_num_threads
    if threads is None and env is not None:
        threads = env.torch_num_threads
    return RunFacts(
        device=device,
        uses_device=uses_device,
        uses_accelerator=uses_accelerator,
        usable_cores=usable,
        usable_cores_source=usable_source,
        torch_threads=threads,
        param_dtypes=tuple(sorted({d for r in child.root_modules for d in r.param_dtypes})),
        root_modules=_root_modules(run),
        main_module=main_module(run.steps),
        steps=steps,
        steps_source=steps_source,
    )


def _traces(run: RunData) -> list[Any]:
    """The parsed traces; [] when there are none or they cannot be read (the registry reports
    an unreadable trace; facts then come from the other documents)."""
    if not run.trace_files:
        return []
    try:
        return list(run.traces)
    except DsprofError:
        return []


def _device(run: RunData, traces: list[Any]) -> tuple[Device, bool, bool]:
    """(the device, uses_device, uses_accelerator): traces first, then child.json, then run.json
    (the rule RunFacts.uses_device documents)."""
    from dsprof.trace.device_kind import device_of_type, trace_device, trace_role

    seen = [trace_device(tf) for tf in traces]
    present = next((d for d in seen if d.kind != "cpu"), None)
    # another accelerator's work, or a GPU driven without its timeline recorded: not CPU work
    other_work = any(trace_role(tf) in ("accelerator", "gpu-unrecorded") for tf in traces)
    busy = [d for d, tf in zip(seen, traces, strict=True) if tf.has_gpu_activity]
    child = run.child
    non_cpu = [t for t in child.device_types if t != "cpu"]
    if busy:
        device, uses = busy[0], True
    elif child.device_types:
        uses = bool(non_cpu)
        if non_cpu:
            device = device_of_type(non_cpu[0], hip=child.hip is not None)
            if present is not None and present.kind == device.kind:
                device = present  # the trace names the board
        else:
            device = present or _machine_device(run) or Device(source="child.json device_types")
    elif traces:
        device, uses = present or Device(source="trace: no device events"), False
    else:  # nothing says what ran where: a GPU in run.json counts as used
        machine = _machine_device(run)
        uses = machine is not None
        device = machine or Device(source="run.json: no GPU" if run.manifest else "")
    return device, uses, uses or other_work


def _machine_device(run: RunData) -> Device | None:
    """The GPUs run.json lists (NVML sees NVIDIA GPUs only), or None."""
    env = run.manifest.environment if run.manifest is not None else None
    if env is None or not env.gpus:
        return None
    names = tuple(g.name for g in env.gpus)
    return Device(kind="cuda", vendor="NVIDIA", names=names, source="run.json gpus (NVML)")


def _usable_cores(run: RunData) -> tuple[float | None, str]:
    """child.json usable_cpus capped at run.json's physical cores; else run.json's counts.

    The run.json fallback overstates the cores in a container or under taskset, so findings
    built on it carry a lower confidence (RunFacts.usable_cores_measured). Hyperthreads add
    little to GEMM/conv throughput and torch's default pool is the physical core count: more
    logical CPUs than cores must not read as idle cores.
    """
    env = run.manifest.environment if run.manifest is not None else None
    physical = env.cpu_count_physical if env is not None else None
    value = run.child.usable_cpus
    if value is not None and value > 0:
        if physical and physical < value:
            return float(physical), f"{USABLE_FROM_CHILD}, capped at run.json cpu_count_physical"
        return float(value), USABLE_FROM_CHILD
    if env is not None:
        if physical:
            return float(physical), "run.json cpu_count_physical"
        if env.cpu_count_logical:
            return float(env.cpu_count_logical), "run.json cpu_count_logical"
    return None, ""


def _numbers(run: RunData) -> tuple[StepSummary, str]:
    """run.json's summary (what `dsprof run` printed) when the runner wrote one; else the same
    numbers computed the same way from the run's tables (a run in progress, a partial folder,
    or a summary written by an older dsprof: before steps were iterations, whose steps were
    model calls, or before traced iterations were left out)."""
    m = run.manifest
    summary = m.summary if m is not None else None
    if summary is not None and summary.count and summary.p50_ns is not None and summary.current:
        return summary, "run.json summary"
    warmup = m.warmup_steps if m is not None else 1
    numbers = summarize_tables(run.steps, run.host, run.gpu, run.cuda_memory, warmup)
    if not numbers.count and summary is not None and summary.count:
        if summary.basis:
            return summary, "run.json summary (written before traced iterations were left out)"
        return summary, "run.json summary (model calls: written before iterations were steps)"
    return numbers, "the run's tables" if numbers.count else ""


def _root_modules(run: RunData) -> tuple[str, ...]:
    """Class names of the outermost modules: child.json's root_modules, else steps.parquet."""
    names = [r.class_name for r in run.child.root_modules]
    if not names and run.steps is not None and "module" in run.steps:
        names = [str(m) for m in run.steps["module"].unique()]
    return tuple(sorted({n for n in names if n}))
