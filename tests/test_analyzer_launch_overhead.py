"""launch-overhead: tiny GPU kernels and tiny CPU ops."""

from __future__ import annotations

from pathlib import Path

import pytest
from trace_cache import findings
from trace_synthetic import TraceBuilder, trace_run

from dsprof.analyzers.launch_overhead import LaunchOverheadAnalyzer


def test_tiny_kernels(tmp_path: Path) -> None:
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    for i in range(50):  # 2 us kernels every 10 us, each launched by a 6 us call
        tb.kernel("tiny", 100 + 10 * i, 2, launch_ts=95 + 10 * i, launch_dur=6)
    (f,) = LaunchOverheadAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json")))
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["tiny_kernel_fraction"] == 1.0
    assert ev["tiny_kernel_launch_share"] == pytest.approx(0.3)
    # lost: the 49 gaps of 8 us between the kernels, waiting for launches (the 100 us before
    # the first one and the 408 us after the last are Python, not launch latency)
    assert ev["launch_idle_share"] == pytest.approx(0.392 + 0.005)
    assert f.severity == "high" and f.impact == pytest.approx(0.397)
    assert "waits for launches" in f.title


def test_back_to_back_tiny_kernels_are_a_fusion_opportunity(tmp_path: Path) -> None:
    """Tiny kernels the GPU runs back to back (0.5 us apart) on a busy GPU: fusion, not
    launch-bound (the shape of the MI210 GPU-only trace)."""
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    for i in range(200):  # 4 us kernels every 4.5 us from 50 us to 950 us
        tb.kernel("tiny", 50 + 4.5 * i, 4, launch_ts=40 + 4.5 * i, launch_dur=3,
                  launch="hipLaunchKernel")  # fmt: skip
    (f,) = LaunchOverheadAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json")))
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["back_to_back_tiny_run_share"] == pytest.approx(0.8995, abs=1e-3)
    assert f.severity == "medium" and "fusion opportunity" in f.title
    assert f.recipes == ["compile", "fused-kernels"]
    assert f.impact == pytest.approx(0.8995 / 3, abs=1e-3)


def test_big_kernels_are_fine(tmp_path: Path) -> None:
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    for i in range(5):
        tb.kernel("big", 100 * i, 90, launch_ts=100 * i, launch_dur=6)
    assert LaunchOverheadAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json"))) == []


def test_tiny_cpu_ops(tmp_path: Path) -> None:
    tb = TraceBuilder(gpu=False)
    tb.step(1, 0, 1000)
    for i in range(60):  # 60 top-level 4 us ops (each with a nested child) every 10 us
        tb.op("aten::mul", 100 + 10 * i, 4)
        tb.op("aten::empty", 101 + 10 * i, 1)
    tb.op("aten::linear", 800, 150)
    (f,) = LaunchOverheadAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json")))
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["tiny_ops_in_runs"] == 60
    assert f.impact == pytest.approx(0.594)
    assert f.severity == "high"


def test_real_trace_rank0() -> None:
    (f,) = [f for f in findings("hta/rank0.json.gz").findings if f.category == "launch-overhead"]
    assert f.severity in ("medium", "high")
    assert {e.metric: e.value for e in f.evidence}["tiny_kernel_fraction"] > 0.8


def test_real_cpu_run_tiny_ops() -> None:
    from planted_runs import planted_run

    from dsprof.analyzers import analyze_run

    doc = analyze_run(planted_run("launch_overhead"))
    (f,) = [f for f in doc.findings if f.category == "launch-overhead"]
    assert f.severity in ("medium", "high")
