"""The sampled-collector contract: what the parent process samples while the script runs.

A sampled collector class (registered in dsprof.collectors.SAMPLED) has:
    name: str                  its key in run.json's collectors ("host", "nvml")
    table: str                 the RunPaths attribute of the table its rows go to ("host" ->
                               metrics/host.parquet); dsprof/store/layout.py names the file
    int_columns: tuple[str, ...]  columns written as int64 (times in ns, indices)
    available() -> (ok, reason)   a static check that changes nothing (a missing GPU is a reason,
                               not an error); `dsprof env` shows it, with describe() when ok
    describe() -> str          what it collects on this machine, for `dsprof env`
    __init__(pid, hz)          attach to the process tree rooted at pid (may raise)
    start()                    begin sampling (on its own thread: never on the script's GIL)
    stop() -> Samples          stop, release what it opened, and return its rows and status
Rows are dicts of one sample; a field that could not be read is left out (absent, never 0).
dsprof.collectors.sampling.Sampling starts and stops every registered collector around a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from dsprof.collectors.sampler import PeriodicSampler
from dsprof.core.manifest import CollectorStatus


@dataclass
class Samples:
    """What one sampled collector collected: its rows, where they go, and how it went."""

    name: str
    table: str
    int_columns: tuple[str, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)
    status: CollectorStatus = field(default_factory=lambda: CollectorStatus(ok=False))

    @classmethod
    def of(
        cls,
        kind: type[SampledCollector],
        rows: list[dict[str, Any]],
        errors: int = 0,
        last_error: str | None = None,
    ) -> Samples:
        """Rows a kind of collector took (elsewhere than in its own stop(): a rank's share)."""
        status = sampled_status(len(rows), errors, last_error)
        return cls(kind.name, kind.table, kind.int_columns, rows, status)

    @classmethod
    def absent(cls, kind: type[SampledCollector], reason: str) -> Samples:
        """A collector that did not run, and why."""
        return cls(
            kind.name, kind.table, kind.int_columns, [], CollectorStatus(ok=False, reason=reason)
        )


def sampled_status(rows: int, errors: int = 0, last_error: str | None = None) -> CollectorStatus:
    """ok when any sample was taken; else why not (the last error, or a script too short)."""
    return CollectorStatus(
        ok=rows > 0,
        reason=""
        if rows
        else f"no samples ({last_error or 'the script ended before the first sample'})",
        detail={"samples": rows, "errors": errors},
    )


class SampledCollector(Protocol):
    """See the module docstring."""

    name: ClassVar[str]
    table: ClassVar[str]
    int_columns: ClassVar[tuple[str, ...]]

    @staticmethod
    def available() -> tuple[bool, str]: ...

    @staticmethod
    def describe() -> str: ...

    @property
    def rows(self) -> list[dict[str, Any]]: ...

    def start(self) -> None: ...

    def stop(self) -> Samples: ...


class PeriodicCollector:
    """A sampled collector that calls sample() at a fixed rate on a niced background thread.

    Subclasses set the class attributes, implement sample() (rows of one sample) and, when they
    hold a handle, close().
    """

    name: ClassVar[str]
    table: ClassVar[str]
    int_columns: ClassVar[tuple[str, ...]] = ("ts_ns",)

    def __init__(self, hz: float) -> None:
        self._sampler = PeriodicSampler(self.name, self.sample, hz)

    def sample(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what __init__ opened (nothing by default)."""

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The samples taken so far (a live view while it runs)."""
        return self._sampler.rows

    def start(self) -> None:
        self._sampler.start()

    def stop(self) -> Samples:
        self._sampler.stop()
        self.close()
        s = self._sampler
        return Samples(
            self.name,
            self.table,
            self.int_columns,
            s.rows,
            sampled_status(len(s.rows), s.errors, s.last_error),
        )


class RowSource(Protocol):
    """An object that takes one sample (its rows) and may hold a handle until close()."""

    def sample(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class SourceCollector(PeriodicCollector):
    """A PeriodicCollector whose rows come from a sampler object that other code uses on its own
    too (dsprof.collectors.host.HostSampler, nvml.NvmlSampler): it samples the object and closes
    it when the collector stops."""

    def __init__(self, source: RowSource, hz: float) -> None:
        self.source = source
        super().__init__(hz)

    def sample(self) -> list[dict[str, Any]]:
        return self.source.sample()

    def close(self) -> None:
        self.source.close()


CollectorFactory = Callable[[int, float], SampledCollector]
