"""One context manager owns the sampled collectors of a run: start, stop, close.

    with Sampling(pid, hz) as sampling:
        ...                                  # the script runs; the collectors sample its tree
    sampling.samples                         # [Samples]: rows and status of every collector

Each registered collector (dsprof.collectors.registry.SAMPLED) that is available starts on
__enter__; __exit__ stops and closes every one that started, whatever ended the block (an error,
Ctrl-C). A collector that is unavailable or fails to start is a status with its reason, never an
error: the run goes on without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsprof.collectors.base import SampledCollector, Samples


class Sampling:
    """Samples the process tree rooted at pid with every available sampled collector."""

    def __init__(
        self, pid: int, hz: float, collectors: Sequence[type[SampledCollector]] | None = None
    ) -> None:
        from dsprof.collectors.registry import SAMPLED

        self.pid = pid
        self.hz = hz
        self.kinds = tuple(SAMPLED if collectors is None else collectors)
        self.running: list[SampledCollector] = []
        self.samples: list[Samples] = []
        self._stopped = False

    def __enter__(self) -> Sampling:
        for kind in self.kinds:
            ok, reason = kind.available()
            if not ok:
                self.samples.append(Samples.absent(kind, reason))
                continue
            try:
                collector: Any = kind(self.pid, self.hz)  # type: ignore[call-arg]
                collector.start()
            except Exception as e:  # the child may already be gone, a driver may refuse
                what = getattr(kind, "start_error", f"{kind.name} could not start")
                self.samples.append(Samples.absent(kind, f"{what}: {e!r}"))
                continue
            self.running.append(collector)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Samples]:
        """Stop and close every started collector (once); the samples of all of them."""
        if not self._stopped:
            self._stopped = True
            for collector in self.running:
                self.samples.append(collector.stop())
        return self.samples

    def get(self, name: str) -> SampledCollector | Samples | None:
        """One collector by name (its `.rows` are a live view while it runs), or its samples once
        stopped; None when no such collector is registered."""
        if not self._stopped:
            for collector in self.running:
                if collector.name == name:
                    return collector
        return next((s for s in self.samples if s.name == name), None)
