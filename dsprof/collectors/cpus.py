"""The cores this process may really use: its CPU affinity, bounded by its cgroup CPU quota.

The one measurement behind run.json's usable_cores (collectors/environment.py), child.json's
usable_cpus (runner/child.py), the trace parse workers (trace/workers.py) and the recipes'
defaults when no run says otherwise (threads, dataloader). A run's own figure, as analyzers and
recipes judge it, is RunFacts.usable_cores (dsprof.store.facts). Standard library only: the
parse workers import it before they fork.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_V2_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def cgroup_cpu_quota() -> float | None:
    """The cgroup CPU quota in cores (v2 cpu.max, else v1 cfs quota/period); None if unlimited."""
    try:
        quota, period = CGROUP_V2_MAX.read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        q = int(CGROUP_V1_QUOTA.read_text())
        p = int(CGROUP_V1_PERIOD.read_text())
        return None if q <= 0 or p <= 0 else q / p
    except (OSError, ValueError):
        return None


def cpu_affinity() -> list[int]:
    """The CPUs this process may run on (all of them where affinity is not supported)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


def usable_cores() -> float:
    """Cores this process may use: the affinity mask, bounded by a cgroup quota (which may be
    fractional, e.g. 2.5 cores)."""
    n = float(len(cpu_affinity()))
    quota = cgroup_cpu_quota()
    return n if quota is None else min(n, quota)


def whole_usable_cores() -> int:
    """usable_cores() as a thread or worker count: at least one."""
    return max(1, int(usable_cores()))
