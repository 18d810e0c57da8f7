"""memory-bandwidth-bound: roofline classification from shapes, name fallback, real traces."""

from __future__ import annotations

from pathlib import Path

import pytest
from trace_cache import findings, trace
from trace_synthetic import TraceBuilder, trace_run

from dsprof.analyzers.memory_bandwidth import MemoryBandwidthAnalyzer
from dsprof.trace import load_trace
from dsprof.trace.membound import classify, device_spec

ADD = {"Input Dims": [[4096, 4096], [4096, 4096], []], "Input type": ["float", "float", "Scalar"]}
MM = {"Input Dims": [[4096, 4096], [4096, 4096]], "Input type": ["c10::BFloat16", "c10::BFloat16"]}


def _trace(tmp_path: Path, add_us: float, mm_us: float) -> Path:
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.op("aten::add", 0, 20, **ADD)
    tb.kernel("some_kernel", 10, add_us, launch_ts=5, launch_dur=5)
    tb.op("aten::mm", 30, 20, **MM)
    tb.kernel("another_kernel", 20 + add_us, mm_us, launch_ts=35, launch_dur=5)
    return tb.write(tmp_path / "t.json")


def test_roofline_classifies_by_intensity(tmp_path: Path) -> None:
    tf = load_trace(_trace(tmp_path, 600, 300))
    spec = device_spec(tf)
    assert spec is not None and spec.name == "A100 80GB SXM"
    k = classify(tf, spec).sort_values("ts_ns")
    assert k["via"].tolist() == ["roofline", "roofline"]
    assert k["membound"].tolist() == [True, False]  # add: AI 1/12; bf16 4096^3 mm: AI ~1365


def test_finding_when_memory_bound_dominates(tmp_path: Path) -> None:
    (f,) = MemoryBandwidthAnalyzer().analyze(trace_run(_trace(tmp_path, 600, 300)))
    assert f.impact == pytest.approx(0.6)
    assert f.severity == "medium"
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["gpu"] == "A100 80GB SXM"
    assert ev["peak_bandwidth_gbs"] == 2039
    # 3 x 4096^2 fp32 = 201 MB in 600 us
    assert ev["achieved_bandwidth_gbs"] == pytest.approx(3 * 4096 * 4096 * 4 / 600_000, rel=1e-3)
    assert "fused-kernels" in f.recipes


def test_compute_bound_step_is_not_flagged(tmp_path: Path) -> None:
    assert MemoryBandwidthAnalyzer().analyze(trace_run(_trace(tmp_path, 100, 800))) == []


def test_qwen_is_not_high() -> None:
    found = [f for f in findings("tracelens/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz").findings]
    assert all(f.severity != "high" for f in found)


def test_owlv2_eager_attention_suggests_sdpa() -> None:
    rel = "tracelens/google_owlv2-large-patch14-ensemble__1016001.json.gz"
    (f,) = [f for f in findings(rel).findings if f.category == "memory-bandwidth-bound"]
    assert f.recipes[0] == "sdpa"
    assert device_spec(trace(rel)).name == "H100 SXM"
