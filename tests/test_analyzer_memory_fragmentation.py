"""memory-fragmentation: from cuda_memory samples and from [memory] events."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from trace_synthetic import TraceBuilder, trace_run

from dsprof.analyzers.memory_fragmentation import (
    FRAGMENTATION_IMPACT,
    RETRY_IMPACT,
    MemoryFragmentationAnalyzer,
)
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import RunData

GIB = 2**30


def _samples(**over: list) -> pd.DataFrame:
    cols = {
        "step": [0, 1, 2],
        "ts_ns": [1, 2, 3],
        "device": [0, 0, 0],
        "allocated_bytes": [1 * GIB, 3 * GIB, 2 * GIB],
        "reserved_bytes": [4 * GIB, 4 * GIB, 4 * GIB],
        "active_bytes": [1 * GIB, 3 * GIB, 2 * GIB],
        "inactive_split_bytes": [0, 0, 0],
        "num_alloc_retries": [0, 0, 0],
        "num_ooms": [0, 0, 0],
    }
    cols.update(over)
    return pd.DataFrame(cols)


def test_quarter_unused_is_medium(tmp_path: Path) -> None:
    run = RunData(paths=RunPaths(tmp_path), manifest=None, cuda_memory=_samples())
    (f,) = MemoryFragmentationAnalyzer().analyze(run)  # 1 GiB of 4 unused at the 3 GiB peak: 25 %
    assert f.severity == "medium"


def test_waste_at_peak(tmp_path: Path) -> None:
    df = _samples(allocated_bytes=[1 * GIB, 1 * GIB, 1 * GIB])
    (f,) = MemoryFragmentationAnalyzer().analyze(
        RunData(paths=RunPaths(tmp_path), manifest=None, cuda_memory=df)
    )
    assert f.severity == "high" and f.impact == FRAGMENTATION_IMPACT
    assert {e.metric: e.value for e in f.evidence}["reserved_unused_at_peak"] == pytest.approx(0.75)


def test_alloc_retries_are_high(tmp_path: Path) -> None:
    df = _samples(num_alloc_retries=[0, 2, 3])
    (f,) = MemoryFragmentationAnalyzer().analyze(
        RunData(paths=RunPaths(tmp_path), manifest=None, cuda_memory=df)
    )
    assert f.severity == "high" and f.impact == RETRY_IMPACT
    assert "3 allocator retries" in f.title


def test_trace_memory_events(tmp_path: Path) -> None:
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel("k", 0, 900, launch_ts=0)
    tb.memory(10, GIB, allocated=GIB, reserved=3 * GIB)
    tb.memory(20, GIB, allocated=2 * GIB, reserved=3 * GIB)
    tb.memory(30, 4 * GIB, allocated=10, reserved=10**12, device_type=0)  # CPU: ignored
    (f,) = MemoryFragmentationAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json")))
    assert f.severity == "medium"
    assert {e.metric: e.value for e in f.evidence}["reserved_unused_at_peak"] == pytest.approx(
        1 / 3, abs=1e-4
    )


def test_compact_allocator_is_fine(tmp_path: Path) -> None:
    df = _samples(allocated_bytes=[3 * GIB, int(3.5 * GIB), 3 * GIB])
    assert (
        MemoryFragmentationAnalyzer().analyze(
            RunData(paths=RunPaths(tmp_path), manifest=None, cuda_memory=df)
        )
        == []
    )
