"""What machine a run happened on (parent side; torch facts come from the child)."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

import psutil

from dsprof.collectors.cpus import whole_usable_cores
from dsprof.core.manifest import Environment, GpuInfo

# environment variables that change how torch runs; recorded so two runs can be compared
RELEVANT_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "PYTORCH_CUDA_ALLOC_CONF",
    "TORCHINDUCTOR_FREEZING",
    "TRITON_INTERPRET",
    "LD_PRELOAD",
    "MALLOC_CONF",
    "LOCAL_RANK",
    "RANK",
    "WORLD_SIZE",
)


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, or platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_environment() -> Environment:
    """Python, OS, CPU, memory, and the GPUs and driver NVML reports (none without NVML)."""
    from dsprof.collectors import nvml

    driver, gpus = nvml.device_info()
    return Environment(
        python=platform.python_version(),
        platform=platform.platform(),
        hostname=socket.gethostname(),
        cpu_model=cpu_model(),
        cpu_count_logical=psutil.cpu_count(logical=True) or 1,
        cpu_count_physical=psutil.cpu_count(logical=False),
        usable_cores=whole_usable_cores(),
        memory_total_bytes=psutil.virtual_memory().total,
        driver=driver,
        gpus=[GpuInfo(**g) for g in gpus],
        env_vars={k: os.environ[k] for k in RELEVANT_ENV if k in os.environ},
    )
