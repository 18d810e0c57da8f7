"""idle-sm: grids smaller than the GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
from trace_cache import findings
from trace_synthetic import TraceBuilder, trace_run

from dsprof.analyzers.idle_sm import IdleSmAnalyzer


def _trace(tmp_path: Path, blocks_per_sm: float) -> Path:
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel(
        "small_grid",
        0,
        400,
        launch_ts=0,
        **{"blocks per SM": blocks_per_sm, "est. achieved occupancy %": 10},
    )
    tb.kernel(
        "full_grid",
        400,
        400,
        launch_ts=300,
        **{"blocks per SM": 4.0, "est. achieved occupancy %": 90},
    )
    return tb.write(tmp_path / "t.json")


def test_idle_sm_fraction_and_impact(tmp_path: Path) -> None:
    (f,) = IdleSmAnalyzer().analyze(trace_run(_trace(tmp_path, 0.25)))
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["idle_sm_fraction_of_kernel_time"] == pytest.approx(0.375)  # 0.75 * 400 / 800
    assert f.impact == pytest.approx(0.3) and f.severity == "high"
    assert ev["achieved_occupancy_pct"] == pytest.approx(50.0)


def test_full_grids_are_fine(tmp_path: Path) -> None:
    assert IdleSmAnalyzer().analyze(trace_run(_trace(tmp_path, 1.5))) == []


def test_qwen_has_full_grids() -> None:
    assert not [
        f
        for f in findings("tracelens/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz").findings
        if f.category == "idle-sm"
    ]


def test_concurrent_kernels_share_the_sms(tmp_path: Path) -> None:
    """A communication kernel with few blocks beside a full-size GEMM on another stream: the SMs
    are in use, nothing is idle (issue 13, class 4)."""
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel("gemm", 0, 990, launch_ts=0, stream=7, **{"blocks per SM": 0.9})
    tb.kernel("ncclDevKernel_AllReduce_RING_LL", 0, 990, launch_ts=1, stream=9,
              **{"blocks per SM": 0.1})  # fmt: skip
    assert IdleSmAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json"))) == []


def test_two_small_grids_at_once_fill_what_one_leaves(tmp_path: Path) -> None:
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    for stream in (7, 8):  # two half-size grids side by side: the GPU is full
        tb.kernel(f"half{stream}", 0, 900, launch_ts=0, stream=stream, **{"blocks per SM": 0.5})
    assert IdleSmAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json"))) == []
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel("half", 0, 900, launch_ts=0, **{"blocks per SM": 0.5})  # alone: half the SMs idle
    (f,) = IdleSmAnalyzer().analyze(trace_run(tb.write(tmp_path / "alone.json")))
    assert f.impact == pytest.approx(0.45)
