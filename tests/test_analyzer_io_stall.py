"""io-stall: DataLoader share, pageable copies, iowait; real traces and a real CPU run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from trace_cache import findings
from trace_synthetic import TraceBuilder, trace_run

from dsprof.analyzers.io_stall import IoStallAnalyzer
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import RunData

LOADER = "enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__"


@pytest.mark.parametrize(
    ("loader_us", "severity"),
    [(30, None), (60, "low"), (250, "medium"), (450, "high")],
    ids=["3%", "6%", "25%", "45%"],
)
def test_dataloader_bands(tmp_path: Path, loader_us: int, severity: str | None) -> None:
    tb = TraceBuilder(gpu=False)
    tb.step(1, 0, 1000)
    tb.span("user_annotation", LOADER, 0, loader_us)
    tb.op("aten::linear", loader_us + 10, 100)
    got = IoStallAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json")))
    if severity is None:
        assert got == []
        return
    (f,) = got
    assert f.severity == severity
    assert f.impact == pytest.approx(loader_us / 1000)
    assert f.recipes == ["dataloader"]  # a CPU trace: pinned memory would not help


def test_pageable_copies(tmp_path: Path) -> None:
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel(
        "Memcpy HtoD (Pageable -> Device)", 100, 150, cat="gpu_memcpy", launch_ts=90, bytes=1 << 20
    )
    tb.kernel("k", 300, 600, launch_ts=290)
    (f,) = IoStallAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json")))
    assert f.impact == pytest.approx(0.15)
    assert f.severity == "medium"
    assert f.recipes[0] == "pinned-memory"
    assert {e.metric: e.value for e in f.evidence}["pageable_h2d_bytes"] == 1 << 20


def test_a_prefetched_batch_costs_nothing_on_a_gpu(tmp_path: Path) -> None:
    """The fetch waits while the GPU works on the previous batch: nothing is lost; only the
    part of a fetch during which the GPU idles counts (issue 13, class 5)."""
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel("k", 0, 950, launch_ts=0)
    tb.span("user_annotation", LOADER, 100, 400)  # 40 % of the step, all under GPU work
    assert IoStallAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json"))) == []
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel("k", 0, 500, launch_ts=0)
    tb.span("user_annotation", LOADER, 300, 400)  # 200 us of it while the GPU idles
    tb.kernel("k2", 700, 300, launch_ts=705)
    (f,) = IoStallAnalyzer().analyze(trace_run(tb.write(tmp_path / "u.json")))
    assert f.impact == pytest.approx(0.2) and f.severity == "medium"


def test_iowait_without_trace(tmp_path: Path) -> None:
    host = pd.DataFrame({"ts_ns": [1, 2, 3], "sys_iowait_pct": [30.0, 40.0, 50.0]})
    run = RunData(paths=RunPaths(tmp_path), manifest=None, host=host)
    (f,) = IoStallAnalyzer().analyze(run)
    assert f.severity == "high" and f.impact == pytest.approx(0.4)
    low = RunData(paths=RunPaths(tmp_path), manifest=None, host=host.assign(sys_iowait_pct=1.0))
    assert IoStallAnalyzer().analyze(low) == []


def test_real_traces() -> None:
    (w0,) = [
        f for f in findings("kineto/resnet50_num_workers_0").findings if f.category == "io-stall"
    ]
    # fetches take 40 % of the steps; the GPU idles 34 % of them waiting (what is lost)
    assert w0.severity in ("medium", "high") and w0.impact == pytest.approx(0.34, abs=0.02)
    assert {e.metric: e.value for e in w0.evidence}["dataloader_share"] == pytest.approx(
        0.40, abs=0.02
    )
    w4 = [f for f in findings("kineto/resnet50_num_workers_4").findings if f.category == "io-stall"]
    assert all(f.severity == "low" for f in w4)
    # the steady state after the first fetch (worker start-up) and the first iteration (cuDNN)
    (p,) = [f for f in findings("param/resnet_kineto.json.gz").findings if f.category == "io-stall"]
    assert p.severity == "high" and p.impact == pytest.approx(0.41, abs=0.02)


def test_real_cpu_run_of_dataloader_script() -> None:
    from planted_runs import planted_run

    from dsprof.analyzers import analyze_run

    doc = analyze_run(planted_run("io_stall"))
    (f,) = [f for f in doc.findings if f.category == "io-stall"]
    assert f.severity in ("medium", "high")
    assert {e.metric: e.value for e in f.evidence}.get("num_workers") == 0
