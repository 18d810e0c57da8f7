"""Shared traces parsed once per test session (parsing all of them takes several seconds)."""

from __future__ import annotations

import functools
from pathlib import Path

from dsprof.analyzers import analyze_traces
from dsprof.core.findings import FindingsDocument
from dsprof.trace import TraceFrames, load_trace

DATA = Path(__file__).parent / "data" / "traces"


@functools.cache
def trace(rel: str) -> TraceFrames:
    """tests/data/traces/<rel>, parsed."""
    return load_trace(DATA / rel)


@functools.cache
def findings(rel: str) -> FindingsDocument:
    """All analyzers over tests/data/traces/<rel> (a file or a directory of rank files)."""
    return analyze_traces([DATA / rel])
