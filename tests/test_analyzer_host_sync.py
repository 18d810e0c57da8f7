"""host-sync: implicit syncs, the explicit-synchronize cap, item() loops on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
from trace_cache import findings
from trace_synthetic import TraceBuilder, trace_run

from dsprof.analyzers.host_sync import HostSyncAnalyzer


def _gpu(tmp_path: Path, sync: str, dur: float, after_idle: bool) -> Path:
    """A sync from 100 us that waits for a kernel running until 400 us; the next kernel starts
    at 420 us (the queue refills at once) or, with after_idle, at 800 us (the host works first)."""
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel("k", 0, 400, launch_ts=0)
    tb.runtime(sync, 100, dur)
    tb.kernel("k2", 800 if after_idle else 420, 150, launch_ts=(790 if after_idle else 410))
    return tb.write(tmp_path / "t.json")


def test_a_sync_that_waits_for_a_busy_gpu_costs_nothing(tmp_path: Path) -> None:
    """Class 5 of issue 13: only what the GPU lost counts."""
    run = trace_run(_gpu(tmp_path, "cudaStreamSynchronize", 300, after_idle=False))
    assert HostSyncAnalyzer().analyze(run) == []


@pytest.mark.parametrize("sync", ["cudaStreamSynchronize", "hipStreamSynchronize"])
def test_the_drained_queue_costs_up_to_the_wait(tmp_path: Path, sync: str) -> None:
    """The host waited 300 us, then left the GPU idle 400 us: 300 us could have overlapped."""
    (f,) = HostSyncAnalyzer().analyze(trace_run(_gpu(tmp_path, sync, 300, after_idle=True)))
    ev = {e.metric: e.value for e in f.evidence}
    assert f.impact == pytest.approx(0.3) and f.severity == "high"
    assert ev["host_blocked_share"] == pytest.approx(0.3)


def test_a_sync_while_only_a_collective_runs_is_lost_time(tmp_path: Path) -> None:
    """The device is "busy" with an all-reduce waiting for its peers; compute is idle."""
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel("gemm", 0, 100, launch_ts=0)
    tb.kernel("ncclDevKernel_AllReduce_RING_LL", 100, 500, launch_ts=10, stream=9)
    tb.runtime("cudaStreamSynchronize", 150, 450)  # returns when the collective ends
    tb.kernel("gemm2", 610, 390, launch_ts=605)
    (f,) = HostSyncAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json")))
    assert f.impact == pytest.approx(0.45)


def test_explicit_synchronize_is_capped_at_medium(tmp_path: Path) -> None:
    run = trace_run(_gpu(tmp_path, "hipDeviceSynchronize", 300, after_idle=True))
    (f,) = HostSyncAnalyzer().analyze(run)
    assert f.severity == "medium" and f.impact == pytest.approx(0.3)
    assert "torch.cuda.synchronize()" in f.title


def test_small_sync_is_ignored(tmp_path: Path) -> None:
    run = trace_run(_gpu(tmp_path, "cudaStreamSynchronize", 20, after_idle=True))
    assert HostSyncAnalyzer().analyze(run) == []


@pytest.mark.parametrize(
    ("call", "name"),
    [
        ("cudaMemcpyAsync", "Memcpy DtoH (Device -> Pinned)"),
        ("hipMemcpyWithStream", "Memcpy DtoD (Device -> Device)"),  # ROCm's blocking copy
    ],
)
def test_blocking_copies(tmp_path: Path, call: str, name: str) -> None:
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel("k", 0, 500, launch_ts=0)
    tb.kernel(name, 500, 2, cat="gpu_memcpy", launch_ts=10, launch_dur=495, launch=call)
    tb.kernel("k2", 900, 100, launch_ts=890)  # the host works 395 us before the next launch
    (f,) = HostSyncAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json")))
    # the call returns 3 us after the copy (idle), then min(waited 492 us, idle after 395 us)
    assert f.impact == pytest.approx(0.398)
    assert "device-to-host copies" in f.title


def test_cpu_item_loop(tmp_path: Path) -> None:
    tb = TraceBuilder(gpu=False)
    tb.step(1, 0, 1000)
    tb.op("aten::linear", 0, 100)
    for i in range(40):  # 40 back-to-back item() calls from 200 us to 595 us
        tb.op("aten::item", 200 + 10 * i, 5)
    (f,) = HostSyncAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json")))
    assert f.impact == pytest.approx(0.395)
    assert f.severity == "high"
    assert {e.metric: e.value for e in f.evidence}["item_calls_per_step"] == 40


@pytest.mark.parametrize(
    ("rel", "severity"),
    [
        # 30 item() calls block the host 43 % of the step while the GPU is busy 96 %: what is
        # lost is the 8 % when only collectives ran (compute idle)
        ("hta/test.json.gz", "medium"),
        ("hta/rank0.json.gz", "high"),
        # each image's 72 ms stream sync serialises the next image's 122 ms preprocessing
        ("tracelens/google_owlv2-large-patch14-ensemble__1016001.json.gz", "high"),
    ],
    ids=["hta-test", "hta-rank0", "owlv2"],
)
def test_real_traces(rel: str, severity: str) -> None:
    (f,) = [f for f in findings(rel).findings if f.category == "host-sync"]
    assert f.severity == severity


def test_final_copy_that_waits_for_a_busy_gpu_is_not_a_finding() -> None:
    """timesformer: a 126 ms blocking D2H copy waits while the GPU finishes the forward."""
    doc = findings("tracelens/facebook_timesformer-base-finetuned-k400__1016002.json.gz")
    assert not [f for f in doc.findings if f.category == "host-sync"]


def test_real_cpu_run_item_loop() -> None:
    from planted_runs import planted_run

    from dsprof.analyzers import analyze_run

    doc = analyze_run(planted_run("host_sync"))
    (f,) = [f for f in doc.findings if f.category == "host-sync"]
    assert f.severity in ("medium", "high")
