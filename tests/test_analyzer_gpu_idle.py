"""gpu-idle: exact on synthetic traces, and the causes on real ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from trace_cache import findings
from trace_synthetic import TraceBuilder, trace_run

from dsprof.analyzers.gpu_idle import GpuIdleAnalyzer, idle_breakdown
from dsprof.trace import load_trace


def _trace(tmp_path: Path, cause: str) -> Path:
    """One 1000 us step; kernels busy [0,100) and [600,1000): 500 us idle, attributed to `cause`."""
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel("k1", 0, 100, launch_ts=0, launch_dur=5)
    if cause == "data loading":
        tb.span(
            "user_annotation",
            "enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__",
            120,
            450,
        )
        tb.kernel("k2", 600, 400, launch_ts=590)
    elif cause == "sync":
        tb.runtime("cudaStreamSynchronize", 20, 82)  # returns when k1 ends; the queue is empty
        tb.kernel("k2", 600, 400, launch_ts=590)
    else:
        tb.kernel("k2", 600, 400, launch_ts=590)  # the host launched late: nothing else happened
    return tb.write(tmp_path / f"{cause.replace(' ', '_')}.json")


@pytest.mark.parametrize("cause", ["host launch", "data loading", "sync"])
def test_idle_share_and_cause(tmp_path: Path, cause: str) -> None:
    (f,) = GpuIdleAnalyzer().analyze(trace_run(_trace(tmp_path, cause)))
    assert f.category == "gpu-idle"
    assert f.impact == pytest.approx(0.5)
    assert f.severity == "high"  # 50 % is IDLE_HIGH
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["idle_cause"] == cause
    assert ev["gpu_idle_ms"] == pytest.approx(0.5)
    assert ev["largest_gap_ms"] == pytest.approx(0.5)
    assert "host-bound" in f.title


def test_breakdown_sums_to_idle(tmp_path: Path) -> None:
    tf = load_trace(_trace(tmp_path, "data loading"))
    b = idle_breakdown(tf)
    assert b is not None
    assert sum(b.by_cause.values()) == b.idle_ns == 500_000
    assert b.by_cause["data loading"] == 500_000


def test_busy_gpu_is_not_flagged(tmp_path: Path) -> None:
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel("k", 0, 800, launch_ts=0)  # 20 % idle < IDLE_MEDIUM
    assert GpuIdleAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json"))) == []


def test_cpu_only_trace_is_not_flagged(tmp_path: Path) -> None:
    tb = TraceBuilder(gpu=False)
    tb.step(1, 0, 1000)
    tb.op("aten::add", 10, 5)
    assert GpuIdleAnalyzer().analyze(trace_run(tb.write(tmp_path / "cpu.json"))) == []


@pytest.mark.parametrize(
    ("rel", "cause"),
    [
        ("tracelens/google_owlv2-large-patch14-ensemble__1016001.json.gz", "data loading"),
        ("param/resnet_kineto.json.gz", "data loading"),
        ("hta/rank0.json.gz", "sync"),
    ],
    ids=["owlv2", "resnet-param", "hta-rank0"],
)
def test_real_traces_host_bound(rel: str, cause: str) -> None:
    (f,) = [f for f in findings(rel).findings if f.category == "gpu-idle"]
    assert f.severity == "high"
    assert "host-bound" in f.title
    assert {e.metric: e.value for e in f.evidence}["idle_cause"] == cause
