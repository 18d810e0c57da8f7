"""host-sync: implicit syncs, the explicit-synchronize cap, item() loops on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
from trace_cache import findings
from trace_synthetic import TraceBuilder, trace_run

from dsprof.analyzers.host_sync import HostSyncAnalyzer


def _gpu(tmp_path: Path, sync: str, dur: float) -> Path:
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel("k", 0, 900, launch_ts=0)
    tb.runtime(sync, 100, dur)
    return tb.write(tmp_path / "t.json")


def test_implicit_sync_share(tmp_path: Path) -> None:
    (f,) = HostSyncAnalyzer().analyze(trace_run(_gpu(tmp_path, "cudaStreamSynchronize", 300)))
    assert f.severity == "high" and f.impact == pytest.approx(0.3)


def test_explicit_synchronize_is_capped_at_medium(tmp_path: Path) -> None:
    (f,) = HostSyncAnalyzer().analyze(trace_run(_gpu(tmp_path, "cudaDeviceSynchronize", 400)))
    assert f.severity == "medium" and f.impact == pytest.approx(0.4)
    assert "torch.cuda.synchronize()" in f.title


def test_small_sync_is_ignored(tmp_path: Path) -> None:
    assert HostSyncAnalyzer().analyze(trace_run(_gpu(tmp_path, "cudaStreamSynchronize", 20))) == []


def test_blocking_device_to_host_copy(tmp_path: Path) -> None:
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel("k", 0, 500, launch_ts=0)
    tb.kernel("Memcpy DtoH (Device -> Pinned)", 500, 2, cat="gpu_memcpy", launch_ts=10, launch_dur=495,
              launch="cudaMemcpyAsync")  # fmt: skip
    (f,) = HostSyncAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json")))
    assert f.impact == pytest.approx(0.495)
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
    "rel",
    [
        "hta/test.json.gz",
        "hta/rank0.json.gz",
        "tracelens/google_owlv2-large-patch14-ensemble__1016001.json.gz",
    ],
    ids=["hta-test", "hta-rank0", "owlv2"],
)
def test_real_traces(rel: str) -> None:
    (f,) = [f for f in findings(rel).findings if f.category == "host-sync"]
    assert f.severity == "high"


def test_real_cpu_run_item_loop() -> None:
    from planted_runs import planted_run

    from dsprof.analyzers import analyze_run

    doc = analyze_run(planted_run("host_sync"))
    (f,) = [f for f in doc.findings if f.category == "host-sync"]
    assert f.severity in ("medium", "high")
