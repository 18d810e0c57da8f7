"""communication-bound: exposed collective time, NCCL or not."""

from __future__ import annotations

from pathlib import Path

import pytest
from trace_cache import findings
from trace_synthetic import TraceBuilder, trace_run

from dsprof.analyzers.communication_bound import CommunicationBoundAnalyzer


def _trace(tmp_path: Path, comm_name: str, overlapped: bool) -> Path:
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel("gemm", 0, 600, launch_ts=0)
    start = 200 if overlapped else 600
    tb.kernel(comm_name, start, 350, launch_ts=start - 10, stream=20)
    return tb.write(tmp_path / "t.json")


@pytest.mark.parametrize(
    "name",
    ["ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevKernelArgsStorage<4096ul>)",
     "void (anonymous namespace)::multimem_all_reduce_kernel<c10::BFloat16, 16>(c10::BFloat16*)"],
    ids=["nccl", "symmetric-memory"],
)  # fmt: skip
def test_exposed_collectives(tmp_path: Path, name: str) -> None:
    (f,) = CommunicationBoundAnalyzer().analyze(trace_run(_trace(tmp_path, name, overlapped=False)))
    assert f.impact == pytest.approx(0.35) and f.severity == "high"


def test_overlapped_collectives_are_low(tmp_path: Path) -> None:
    (f,) = CommunicationBoundAnalyzer().analyze(
        trace_run(_trace(tmp_path, "ncclKernel_AllReduce", overlapped=True))
    )
    assert f.severity == "low"
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["comm_overlap_ratio"] == pytest.approx(400 / 350, abs=1) or ev[
        "comm_overlap_ratio"
    ] == pytest.approx(1.0)
    assert f.impact == pytest.approx(0.0)


def test_gloo_on_cpu(tmp_path: Path) -> None:
    tb = TraceBuilder(gpu=False)
    tb.step(1, 0, 1000)
    tb.span("user_annotation", "gloo:all_reduce", 100, 200)
    (f,) = CommunicationBoundAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json")))
    assert f.impact == pytest.approx(0.2) and f.severity == "medium"


def test_b200_symmetric_memory_collectives_recognised() -> None:
    (f,) = [
        f
        for f in findings("tracelens/eager_trace.json.gz").findings
        if f.category == "communication-bound"
    ]
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["non_nccl_collective_kernels"] == 73
    assert ev["nccl_kernels"] == 1
    assert "multimem_all_reduce_kernel" in f.title
