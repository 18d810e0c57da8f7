"""The analyzer contract: a pure function of a run's data to findings.

An analyzer class has:
    name: str               kebab-case registry name (usually the category it emits)
    version: int            bumped when its logic changes (findings can be rebuilt)
    requires: tuple[str, ...]  artifacts it needs: "trace", "steps", "host", "gpu",
                            "cuda_memory", "child_info", "ranks", "requests"; missing ones -> it is skipped
    analyze(run) -> list[Finding]   pure: no I/O beyond RunData's lazy loading, no printing
A second-pass analyzer (the registry's SECOND_PASS) has analyze(run, first_pass) instead: it is
given the first pass's findings on the same run and weighs them (an analyzer never runs another).
Facts about the run that others need too (device, usable cores, dtypes...) are run.facts.
An analyzer that judges each trace alone (one rank at a time, the worst rank kept) subclasses
dsprof.analyzers.trace_scope.PerTraceAnalyzer and sets `on_gpu` and/or `on_cpu` to its function
of one trace; CPU analyzers build their finding with dsprof.analyzers.cpu_facts.cpu_finding.

Its docstring has the sections Detects / Signal / Thresholds / Evidence / False positives /
References, and every threshold is a named module constant cited there with its source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from dsprof.core.findings import Finding
    from dsprof.store.run_store import RunData


class Analyzer(Protocol):
    """What the registry holds."""

    name: ClassVar[str]
    version: ClassVar[int]
    requires: ClassVar[tuple[str, ...]]

    def analyze(self, run: RunData) -> list[Finding]: ...


class SecondPassAnalyzer(Protocol):
    """What the registry's second pass holds: analyze() also gets the first pass's findings."""

    name: ClassVar[str]
    version: ClassVar[int]
    requires: ClassVar[tuple[str, ...]]

    def analyze(self, run: RunData, first_pass: Sequence[Finding]) -> list[Finding]: ...


def has_artifacts(run: RunData, requires: tuple[str, ...]) -> bool:
    """True when every artifact an analyzer requires is present in the run."""
    present = {
        "trace": bool(run.trace_files),
        "steps": run.steps is not None and len(run.steps) > 0,
        "host": run.host is not None and len(run.host) > 0,
        "gpu": run.gpu is not None and len(run.gpu) > 0,
        "cuda_memory": run.cuda_memory is not None and len(run.cuda_memory) > 0,
        "child_info": run.child_info is not None,
        "ranks": len(run.ranks) > 1 or len(run.trace_files) > 1,
        "requests": run.requests is not None and len(run.requests) > 0,
    }
    return all(present.get(r, False) for r in requires)
