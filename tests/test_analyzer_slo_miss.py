"""slo-miss on synthetic load runs: each cause from hand-built requests, steps and load.json."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dsprof.analyzers.slo_miss import SATURATED_BUSY_SHARE, SloMissAnalyzer
from dsprof.core.load import LatencySummary, LoadStep, LoadSummary
from dsprof.load.slo import check_slos, parse_slos
from dsprof.load.summary import measurement
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import RunData

MS = 1_000_000
T0 = 1_800_000_000_000_000_000


def _run(tmp_path, latency_ms, *, queue_ms=None, compute_ms=None, calls=None, slo="p99<100ms"):
    n = len(latency_ms)
    sched = T0 + np.arange(n) * 10 * MS
    cols = {
        "request_id": np.arange(n), "step": 0, "priority": None, "scheduled_ns": sched,
        "sent_ns": sched, "done_ns": sched + np.asarray(latency_ms) * MS,
        "latency_ns": (np.asarray(latency_ms) * MS).astype("int64"), "error": None,
    }  # fmt: skip
    if queue_ms is not None:
        cols["server_queue_ns"] = (np.asarray(queue_ms) * MS).astype("int64")
        cols["server_compute_ns"] = (np.asarray(compute_ms) * MS).astype("int64")
    requests = pd.DataFrame(cols)
    end = int(requests["done_ns"].max())
    slos = parse_slos([slo])
    m = measurement(requests, slos, T0, end)
    step = LoadStep(
        index=0, mode="open-loop", offered_rate_per_s=100.0, start_ns=T0, end_ns=end,
        requests=n, completed=n, errors=0, timeouts=0, achieved_rate_per_s=n / ((end - T0) / 1e9),
        latency=LatencySummary(count=n), slos=check_slos(slos, m),
    )  # fmt: skip
    summary = LoadSummary(target="x", url="http://127.0.0.1/x", mode="open-loop", client="t",
                          timeout_s=1, steps=[step])  # fmt: skip
    steps = None
    if calls is not None:  # (start offset ms, duration ms) of the service's model calls
        steps = pd.DataFrame(
            {
                "start_ns": [T0 + s * MS for s, _ in calls],
                "end_ns": [T0 + (s + d) * MS for s, d in calls],
            }
        )
    run = RunData(paths=RunPaths(tmp_path), manifest=None, steps=steps)
    run.__dict__["requests"] = requests
    run.__dict__["load"] = summary
    return run


def _calls(busy_share, total_ms, call_ms):
    period = call_ms / busy_share
    return [(t, call_ms) for t in np.arange(0, total_ms, period)]


def test_saturated_service_is_queueing(tmp_path):
    lat = np.linspace(50, 900, 100)
    run = _run(tmp_path, lat, calls=_calls(0.95, 2000, 40))
    (f,) = SloMissAnalyzer().analyze(run)
    assert f.category == "slo-miss" and "queueing" in f.title and f.severity == "high"
    busy = next(e for e in f.evidence if e.metric == "model busy share")
    assert busy.value >= SATURATED_BUSY_SHARE and "batching" in f.recipes


def test_idle_model_with_long_queue_is_batch_waiting(tmp_path):
    lat = np.full(100, 150.0)
    run = _run(tmp_path, lat, queue_ms=np.full(100, 120.0), compute_ms=np.full(100, 20.0),
               calls=_calls(0.3, 2000, 20))  # fmt: skip
    (f,) = SloMissAnalyzer().analyze(run)
    assert "batch waiting" in f.title and f.impact == pytest.approx(0.8)
    assert f.severity == "medium"  # 150 ms against 100: missed by less than 2x


def test_a_slow_call_is_compute(tmp_path):
    lat = np.full(100, 260.0)
    run = _run(tmp_path, lat, queue_ms=np.full(100, 10.0), compute_ms=np.full(100, 240.0),
               calls=_calls(0.5, 2000, 240))  # fmt: skip
    (f,) = SloMissAnalyzer().analyze(run)
    assert "compute" in f.title and "int8-dynamic" in f.recipes
    assert f.impact == pytest.approx(240 / 260, rel=1e-3)


def test_time_outside_the_model_is_host_work(tmp_path):
    lat = np.full(100, 300.0)
    run = _run(tmp_path, lat, queue_ms=np.full(100, 5.0), compute_ms=np.full(100, 15.0),
               calls=_calls(0.2, 2000, 15))  # fmt: skip
    (f,) = SloMissAnalyzer().analyze(run)
    assert "host work" in f.title and f.impact == pytest.approx(280 / 300, rel=1e-3)


def test_a_met_slo_gives_no_finding(tmp_path):
    run = _run(tmp_path, np.full(100, 20.0), calls=_calls(0.95, 2000, 15))
    assert SloMissAnalyzer().analyze(run) == []
