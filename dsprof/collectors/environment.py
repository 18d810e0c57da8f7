"""What machine a run happened on (parent side; torch facts come from the child)."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

import psutil

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


def cgroup_cpu_quota() -> float | None:
    """The cgroup CPU quota in cores (v2 cpu.max, else v1 cfs quota/period); None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if q <= 0 or p <= 0 else q / p
    except (OSError, ValueError):
        return None


def usable_cores() -> int:
    """Cores this process may run on: the affinity mask, bounded by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return n if quota is None else min(n, max(1, int(quota)))


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
        usable_cores=usable_cores(),
        memory_total_bytes=psutil.virtual_memory().total,
        driver=driver,
        gpus=[GpuInfo(**g) for g in gpus],
        env_vars={k: os.environ[k] for k in RELEVANT_ENV if k in os.environ},
    )
