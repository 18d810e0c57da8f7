"""NVML rows of the GPUs a process tree uses, with the tree's own memory on each (read-only).

NvmlSampler (dsprof.collectors.nvml) samples every GPU; a watched service uses some of them.
NVML lists the processes holding a context on each GPU (nvmlDeviceGetComputeRunningProcesses
and ...GraphicsRunningProcesses, read-only queries): the GPUs listing a PID of the tree are the
service's, and the memory NVML attributes to those PIDs is the service's own (`proc_mem_used_bytes`).

When NVML lists none of the tree's PIDs (the service has not touched CUDA yet, or it runs in a
container whose PIDs NVML does not see), every GPU is kept and a note says why. Without NVML at
all the watch goes on with host metrics and says so: absence is a note, never an error.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

# the process list per GPU changes rarely; NVML's query is a few ms per GPU
PROCESS_REFRESH_S = 2.0

ProcessUse = dict[int, list[tuple[int, int | None]]]  # gpu index -> [(pid, used bytes or None)]


def select_rows(
    rows: list[dict[str, Any]], use: ProcessUse, pids: Iterable[int]
) -> tuple[list[dict[str, Any]], str | None]:
    """(rows of the GPUs the PIDs use, each with proc_mem_used_bytes; a note when none match).

    rows: NvmlSampler rows (one per GPU); use: NVML's running processes per GPU.
    """
    tree = set(pids)
    mine: dict[int, int | None] = {}
    for gpu, procs in use.items():
        hits = [used for pid, used in procs if pid in tree]
        if hits:
            known = [u for u in hits if u is not None]
            mine[gpu] = sum(known) if known else None
    if not mine:
        note = (
            "NVML lists no process of the watched tree on any GPU (it has not used CUDA yet, or "
            "its PIDs are in another namespace): showing every GPU"
            if rows
            else None
        )
        return rows, note
    out = []
    for row in rows:
        gpu = int(row.get("gpu_index", -1))
        if gpu in mine:
            row = dict(row)
            used = mine[gpu]
            if used is not None:
                row["proc_mem_used_bytes"] = used
            out.append(row)
    return out, None


def running_processes(nvml: Any, handle: Any) -> list[tuple[int, int | None]]:
    """[(pid, used GPU memory bytes or None)] NVML lists on one GPU (compute and graphics)."""
    found: list[tuple[int, int | None]] = []
    for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        fn = getattr(nvml, name, None)
        if fn is None:
            continue
        try:
            procs = fn(handle)
        except nvml.NVMLError:
            continue
        for p in procs:
            used = getattr(p, "usedGpuMemory", None)
            # NVML reports "not available" (under some drivers and in MIG) as a huge sentinel
            known = int(used) if isinstance(used, int) and 0 <= used < (1 << 60) else None
            found.append((int(p.pid), known))
    return found


class ProcessGpuSampler:
    """Samples the GPUs the process tree rooted at pid uses (open until close())."""

    def __init__(self, pid: int) -> None:
        import psutil

        from dsprof.collectors.nvml import NvmlSampler

        self.inner = NvmlSampler()
        self.root = psutil.Process(pid)
        self.note: str | None = None
        self._use: ProcessUse = {}
        self._pids: list[int] = [pid]
        self._next_refresh = 0.0

    def _refresh(self) -> None:
        import psutil

        now = time.monotonic()
        if now < self._next_refresh:
            return
        self._next_refresh = now + PROCESS_REFRESH_S
        try:
            self._pids = [self.root.pid, *(c.pid for c in self.root.children(recursive=True))]
        except psutil.Error:
            self._pids = [self.root.pid]
        nv = self.inner.nvml
        self._use = {i: running_processes(nv, h) for i, h in enumerate(self.inner.handles)}

    def sample(self) -> list[dict[str, Any]]:
        self._refresh()
        rows, self.note = select_rows(self.inner.sample(), self._use, self._pids)
        return rows

    def close(self) -> None:
        self.inner.close()
