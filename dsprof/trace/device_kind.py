"""Which accelerator a trace was recorded on: CUDA (NVIDIA), ROCm/HIP (AMD), another accelerator
(MTIA, XPU, HPU, ...), or none (CPU).

Signals, strongest first:
    top-level keys: Kineto writes hip_runtime_version / roctracer_version on ROCm builds and
        cuda_runtime_version / cupti_version on CUDA builds (tracelens/gpu_only_trace, an MI210
        trace, carries the former; the H100 traces the latter)
    deviceProperties names: "AMD Instinct MI210", "NVIDIA H100 80GB HBM3", "Tesla V100-SXM2-32GB"
    runtime call names: hipLaunchKernel, hipFree... are ROCm's (recorded under the cuda_runtime
        category like CUDA's); a trace without version keys or device names still says HIP
    event categories: kernels recorded through CUPTI/roctracer; another accelerator's runtime
        events (Kineto names them <device>_runtime, e.g. mtia_runtime in hta/mtia_rank_0) land in
        no table and are counted in TraceFrames.unread_categories
A trace can list GPUs in deviceProperties without any GPU work (a CPU run on a GPU machine): the
device is then known but unused (dsprof.core.facts.RunFacts.uses_gpu).

trace_role(tf) says who judges a trace: the GPU analyzers ("gpu": CUDA/HIP kernels or copies
recorded), the CPU analyzers ("cpu": no accelerator work at all), or nobody ("accelerator":
another accelerator's work, which dsprof does not analyse; "gpu-unrecorded": GPU runtime calls
or NCCL collectives without the device's timeline, e.g. under the CUPTI range profiler). The registry's notices
(dsprof.analyzers.notices) say so for the last two.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from dsprof.core.facts import Device

if TYPE_CHECKING:
    from dsprof.trace.frames import TraceFrames

ROCM_KEYS = ("hip_runtime_version", "hip_driver_version", "roctracer_version")
CUDA_KEYS = ("cuda_runtime_version", "cuda_driver_version", "cupti_version")
AMD_NAME_RE = re.compile(r"\bAMD\b|Instinct|Radeon|\bgfx\d", re.IGNORECASE)
NVIDIA_NAME_RE = re.compile(r"NVIDIA|Tesla|GeForce|Quadro|\bRTX\b|\bTITAN\b", re.IGNORECASE)
INTEL_NAME_RE = re.compile(r"\bIntel\b|Gaudi|Data Center GPU", re.IGNORECASE)
# <device>_runtime / _driver / _kernel ... categories of accelerators without a table of their own
ACCELERATOR_CAT_RE = re.compile(
    r"^(?!(?:cuda|gpu|cpu|python|user)_)([a-z0-9]+)_(runtime|driver|kernel|memcpy|memset|ccp_events)$"
)
# the device names Kineto and torch use, as a person says them
ACCELERATOR_VENDORS = {
    "mtia": "Meta (MTIA)",
    "xpu": "Intel (XPU)",
    "hpu": "Intel Gaudi (HPU)",
    "mps": "Apple (MPS)",
    "privateuse1": "out-of-tree (PrivateUse1)",
}


def accelerator_categories(tf: TraceFrames) -> list[str]:
    """Categories of another accelerator's events in the trace (e.g. ['mtia_runtime'])."""
    return sorted(c for c in tf.unread_categories if ACCELERATOR_CAT_RE.match(c))


TraceRole = Literal["gpu", "cpu", "accelerator", "gpu-unrecorded"]
# runtime call families that only a process driving a GPU makes (dsprof.trace.calls)
GPU_CALL_FAMILIES = ("launch", "copy", "explicit-sync", "implicit-sync", "allocator")


def gpu_calls(tf: TraceFrames) -> int:
    """Runtime calls that launch, copy, synchronise or allocate on a GPU (CUDA or HIP)."""
    rt = tf.runtime_calls
    return int(rt["family"].isin(GPU_CALL_FAMILIES).sum()) if len(rt) else 0


def nccl_collectives(tf: TraceFrames) -> int:
    """Host-side NCCL/RCCL collective spans (nccl:all_reduce, ...): NCCL runs on GPUs only."""
    names = tf.comm_cpu["name"].astype(str) if len(tf.comm_cpu) else None
    return int(names.str.startswith(("nccl:", "rccl:")).sum()) if names is not None else 0


def trace_role(tf: TraceFrames) -> TraceRole:
    """Who judges this trace (see the module docstring)."""
    if tf.has_gpu_activity:
        return "gpu"
    if accelerator_categories(tf):
        return "accelerator"
    if gpu_calls(tf) or nccl_collectives(tf):
        return "gpu-unrecorded"
    return "cpu"


def trace_device(tf: TraceFrames) -> Device:
    """The accelerator the trace shows (see the module docstring), or Device() for the CPU."""
    names = tuple(str(p["name"]) for p in tf.device_properties if p.get("name"))
    meta = tf.metadata
    rocm_key = next((k for k in ROCM_KEYS if k in meta), None)
    hip_calls = any(str(c).startswith("hip") for c in tf.runtime_names)
    if rocm_key or hip_calls or any(AMD_NAME_RE.search(n) for n in names):
        source = (
            f"trace {rocm_key}"
            if rocm_key
            else ("trace runtime calls (hip*)" if hip_calls else "trace deviceProperties")
        )
        return Device(kind="rocm", vendor="AMD", names=names, source=source)
    cuda_key = next((k for k in CUDA_KEYS if k in meta), None)
    if any(NVIDIA_NAME_RE.search(n) for n in names) or cuda_key:
        source = "trace deviceProperties" if names else f"trace {cuda_key}"
        return Device(kind="cuda", vendor="NVIDIA", names=names, source=source)
    others = accelerator_categories(tf)
    if others:
        prefix = others[0].split("_", 1)[0]
        vendor = ACCELERATOR_VENDORS.get(prefix, prefix.upper())
        return Device(
            kind="accelerator", vendor=vendor, names=names, source=f"trace events {others[0]}"
        )
    if any(INTEL_NAME_RE.search(n) for n in names):
        return Device(
            kind="accelerator", vendor="Intel", names=names, source="trace deviceProperties"
        )
    if tf.has_gpu_activity:  # kernels without a name or version to say whose: CUPTI's format
        return Device(kind="cuda", vendor=None, names=names, source="trace GPU events")
    return Device(names=names, source="trace: no device events")


def device_of_type(device_type: str, hip: bool = False) -> Device:
    """The device behind a torch device type seen in step outputs ('cuda', 'xpu', 'mps', ...)."""
    if device_type == "cuda":
        if hip:
            return Device(kind="rocm", vendor="AMD", source="child.json (torch.version.hip)")
        return Device(kind="cuda", vendor="NVIDIA", source="child.json device_types")
    if device_type == "cpu":
        return Device(source="child.json device_types")
    vendor = ACCELERATOR_VENDORS.get(device_type, device_type.upper())
    return Device(kind="accelerator", vendor=vendor, source="child.json device_types")
