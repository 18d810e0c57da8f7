"""Per-rank samples in the parent of a multi-rank job: each worker's processes, each rank's GPU.

torchrun starts the workers as its own children, each with RANK in its environment; a discovery
thread finds them as they appear and gives each its own host sampler (on its own thread, since
psutil's system-wide CPU percentages are measured per calling thread). NVML samples every GPU of
the node once; each rank's folder gets the rows of the GPU its LOCAL_RANK selects.
"""

from __future__ import annotations

from typing import Any

import psutil

from dsprof.collectors.host import HostSampler
from dsprof.collectors.sampler import PeriodicSampler

# workers appear a second or so after torchrun starts; look for new ones this often
DISCOVERY_HZ = 5.0


class RankHostSamplers:
    """Finds torchrun's worker processes by their RANK and samples each one's process tree."""

    def __init__(self, agent_pid: int, hz: float) -> None:
        self.hz = hz
        self.samplers: dict[int, PeriodicSampler] = {}
        self._errors: dict[int, str] = {}
        self._seen: set[int] = set()
        # the Process objects themselves: they tell a reused pid from the worker
        self._workers: list[psutil.Process] = []
        try:
            self._agent: psutil.Process | None = psutil.Process(agent_pid)
        except psutil.Error:
            self._agent = None
        self._discovery = PeriodicSampler("rank-discovery", self._discover, DISCOVERY_HZ)

    def start(self) -> None:
        self._discovery.start()

    def _discover(self) -> list[dict[str, Any]]:
        if self._agent is None:
            return []
        try:
            children = self._agent.children(recursive=False)
        except psutil.Error:
            return []
        for child in children:
            if child.pid in self._seen:
                continue
            try:
                # before exec the child still has torchrun's environment: try again next time
                rank_env = child.environ().get("RANK")
            except psutil.Error:
                continue
            if rank_env is None or not rank_env.isdigit():
                continue
            self._seen.add(child.pid)
            self._workers.append(child)
            rank = int(rank_env)
            if rank in self.samplers:  # a restarted worker: keep the first one's samples
                continue
            try:
                sampler = PeriodicSampler(
                    f"host-rank{rank}", HostSampler(child.pid).sample, self.hz
                )
            except psutil.Error as e:
                self._errors[rank] = f"psutil could not attach to rank {rank}'s process: {e!r}"
                continue
            sampler.start()
            self.samplers[rank] = sampler
        return []

    def wait_workers(self, timeout_s: float) -> None:
        """Wait for the workers seen to exit; kill those still there after timeout_s."""
        _, alive = psutil.wait_procs(self._workers, timeout=timeout_s)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                continue

    def stop(self) -> None:
        self._discovery.stop()
        for s in self.samplers.values():
            s.stop()

    def why_not(self, rank: int) -> str:
        """Why a rank has no host samples."""
        return self._errors.get(
            rank, f"rank {rank}'s process was not seen among torchrun's workers while it ran"
        )


def gpu_index_for(local_rank: int, visible: str | None) -> int | None:
    """The NVML index of the GPU a rank uses by convention (cuda:LOCAL_RANK).

    CUDA_VISIBLE_DEVICES renumbers devices for torch but not for NVML; UUIDs there are not mapped.
    """
    if visible is None or not visible.strip():
        return local_rank
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    if local_rank >= len(entries) or not entries[local_rank].isdigit():
        return None
    return int(entries[local_rank])


def gpu_rows_for(rows: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    """The NVML rows of one GPU (by NVML index)."""
    return [r for r in rows if r.get("gpu_index") == index]
