"""Host metrics with psutil for the child's whole process tree and the system (in the parent)."""

from __future__ import annotations

import contextlib
import time
from typing import Any, ClassVar

import psutil

from dsprof.collectors.base import SourceCollector

TREE_REFRESH_S = 1.0


def available() -> tuple[bool, str]:
    """psutil is a hard dependency; host sampling is always possible."""
    return True, ""


class HostSampler:
    """One sample: the process tree rooted at `pid` summed, plus per-CPU and iowait."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self._procs: dict[int, psutil.Process] = {pid: self.root}
        self._children: list[psutil.Process] = []
        self._next_tree = 0.0
        # cpu_percent(None) measures since the previous call: prime the counters
        self.root.cpu_percent(None)
        psutil.cpu_percent(percpu=True)
        psutil.cpu_times_percent(percpu=False)

    def _tree(self) -> list[psutil.Process]:
        # listing descendants scans every process on the machine (~0.9 ms, 80 % of a sample):
        # refresh it once a second; a new DataLoader worker is picked up within that
        now = time.monotonic()
        if now >= self._next_tree:
            try:
                self._children = self.root.children(recursive=True)
            except psutil.Error:
                self._children = []
            self._next_tree = now + TREE_REFRESH_S
        children = self._children
        procs = [self.root]
        for c in children:
            known = self._procs.get(c.pid)
            if known is None:
                with contextlib.suppress(psutil.Error):
                    c.cpu_percent(None)
                self._procs[c.pid] = c
                known = c
            procs.append(known)
        return procs

    def sample(self) -> list[dict[str, Any]]:
        try:
            # an exited child lingers as a zombie until reaped: it reads as RSS 0, CPU 0, which
            # would be a fake drop to zero at the end of every run
            if self.root.status() == psutil.STATUS_ZOMBIE:
                return []
        except psutil.Error:
            return []
        now = time.time_ns()
        row: dict[str, Any] = {"ts_ns": now}
        cpu = rss = threads = count = 0
        main_cpu_s = workers_cpu_s = 0.0
        io_r = io_w = vol = invol = 0
        io_ok = True
        for p in self._tree():
            try:
                if p is not self.root and p.status() == psutil.STATUS_ZOMBIE:
                    continue
                with p.oneshot():
                    cpu += p.cpu_percent(None)
                    times = p.cpu_times()
                    if p is self.root:
                        # worker processes the script has already waited for (a Pool that
                        # closed, DataLoader workers) count in its children_* times
                        main_cpu_s = times.user + times.system
                        workers_cpu_s += times.children_user + times.children_system
                    else:
                        workers_cpu_s += times.user + times.system
                    rss += p.memory_info().rss
                    threads += p.num_threads()
                    cs = p.num_ctx_switches()
                    vol += cs.voluntary
                    invol += cs.involuntary
                    try:
                        io = p.io_counters()
                        io_r += io.read_bytes
                        io_w += io.write_bytes
                    except (psutil.AccessDenied, AttributeError):
                        io_ok = False
                count += 1
            except psutil.Error:
                continue  # exited between listing and reading
        if count == 0:
            return []
        row.update(
            proc_cpu_pct=cpu,
            main_cpu_ns=int(main_cpu_s * 1e9),
            workers_cpu_ns=int(workers_cpu_s * 1e9),
            proc_rss_bytes=rss,
            proc_threads=threads,
            proc_count=count,
            proc_ctx_switches_voluntary=vol,
            proc_ctx_switches_involuntary=invol,
        )
        if io_ok:
            row.update(proc_io_read_bytes=io_r, proc_io_write_bytes=io_w)
        per_cpu = psutil.cpu_percent(percpu=True)
        row["sys_cpu_pct"] = sum(per_cpu) / len(per_cpu) if per_cpu else None
        times = psutil.cpu_times_percent(percpu=False)
        if hasattr(times, "iowait"):
            row["sys_iowait_pct"] = times.iowait
        for i, v in enumerate(per_cpu):
            row[f"cpu{i}_pct"] = v
        return [row]

    def close(self) -> None:
        """Nothing to release: psutil holds no handle between samples."""


class HostCollector(SourceCollector):
    """The sampled collector of host.parquet (see dsprof.collectors.base)."""

    name: ClassVar[str] = "host"
    table: ClassVar[str] = "host"
    int_columns: ClassVar[tuple[str, ...]] = ("ts_ns",)
    start_error: ClassVar[str] = "psutil could not attach"
    label: ClassVar[str] = "host (psutil)"

    def __init__(self, pid: int, hz: float) -> None:
        super().__init__(HostSampler(pid), hz)  # raises when the process is already gone

    @staticmethod
    def available() -> tuple[bool, str]:
        return available()

    @staticmethod
    def describe() -> str:
        return "process tree CPU/RSS/threads/IO/context switches; per-CPU and iowait"
