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
