"""straggler: the slow rank named, from per-rank traces."""

from __future__ import annotations

from pathlib import Path

import pytest
from trace_cache import findings
from trace_synthetic import TraceBuilder, trace_run

from dsprof.analyzers.straggler import StragglerAnalyzer


def _ranks(tmp_path: Path, step_us: list[int]) -> list[Path]:
    paths = []
    for rank, dur in enumerate(step_us):
        tb = TraceBuilder()
        tb.meta["distributedInfo"] = {"backend": "nccl", "rank": rank, "world_size": len(step_us)}
        tb.step(1, 0, dur)
        tb.kernel("compute", 0, dur - 300, launch_ts=0)
        tb.kernel("ncclKernel_AllReduce_RING_LL_Sum_float", dur - 250, 200, launch_ts=dur - 260)
        paths.append(tb.write(tmp_path / f"rank{rank}.json"))
    return paths


def test_slow_rank_named(tmp_path: Path) -> None:
    (f,) = StragglerAnalyzer().analyze(trace_run(*_ranks(tmp_path, [10_000, 10_000, 15_000])))
    assert f.title.startswith("rank 2 is the straggler")
    assert f.impact == pytest.approx(1 / 3, abs=1e-4) and f.severity == "high"
    ev = {e.metric: e.value for e in f.evidence}
    assert (
        ev["slow_rank"] == "rank 2"
        and ev["slow_rank_step_ms"] == 15.0
        and ev["median_rank_step_ms"] == 10.0
    )


def test_balanced_ranks(tmp_path: Path) -> None:
    assert StragglerAnalyzer().analyze(trace_run(*_ranks(tmp_path, [10_000, 10_200, 10_400]))) == []


def test_single_trace_has_no_straggler(tmp_path: Path) -> None:
    assert StragglerAnalyzer().analyze(trace_run(*_ranks(tmp_path, [10_000]))) == []


def test_dlrm_eight_ranks_names_rank_1() -> None:
    (f,) = [f for f in findings("param/dlrm_kineto").findings if f.category == "straggler"]
    assert {e.metric: e.value for e in f.evidence}["slow_rank"] == "rank 1"
    assert f.severity in ("medium", "high")
    assert {e.metric: e.value for e in f.evidence}["ranks"] == 8
