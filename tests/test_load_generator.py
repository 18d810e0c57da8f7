"""The load generator against a real uvicorn service on 127.0.0.1."""

from __future__ import annotations

import time

import numpy as np
from load_support import stall_app

from dsprof.load import generator as gen
from dsprof.load.arrivals import schedule_ns
from dsprof.load.plan import RequestTemplate
from dsprof.load.slo import parse_slos
from dsprof.load.summary import requests_frame, summarize_step

BODY = [RequestTemplate(body=b"{}", headers={"Content-Type": "application/json"})]


def _open_loop(url, rate, n, priorities=None):
    due = schedule_ns(rate, arrival="constant", requests=n)
    step = gen.Step(0, url, BODY, priorities or [None] * n, due_ns=due, timeout_s=10)
    log, why = gen.run_step(step)
    assert why is None
    return requests_frame(log.columns())


def _closed_loop(url, n):
    step = gen.Step(0, url, BODY, [None] * n, concurrency=1, requests=n, timeout_s=10)
    log, why = gen.run_step(step)
    assert why is None
    return requests_frame(log.columns())


def _ms(df, q):
    return float(np.percentile(df["latency_ns"].dropna().to_numpy(dtype=float), q)) / 1e6


def test_a_one_second_stall_shows_in_p99_and_max_of_a_fixed_rate_run():
    # 200 requests at 50 req/s; request 40 stalls the service's event loop for 1 s, so the ~50
    # requests due during the stall all wait: p99 and max carry it, counted from the schedule
    with stall_app("--stall-at", "40", "--stall-s", "1.0", "--work-ms", "2") as url:
        df = _open_loop(url, rate=50, n=200)
    assert len(df) == 200 and df["error"].isna().all()
    assert _ms(df, 100) > 900  # the stalled request itself
    assert _ms(df, 99) > 800  # and the many that were due while it stalled
    assert _ms(df, 50) < 200
    waited = (df["latency_ns"] > 500e6).sum()
    assert waited >= 20  # a closed loop would charge the stall to one request only


def test_a_closed_loop_measurement_hides_the_same_stall():
    # the same service and stall measured closed-loop: one request sees it, p99 does not
    with stall_app("--stall-at", "40", "--stall-s", "1.0", "--work-ms", "2") as url:
        df = _closed_loop(url, n=200)
    assert _ms(df, 100) > 900
    assert _ms(df, 99) < 200
    assert (df["latency_ns"] > 500e6).sum() == 1


def test_priorities_travel_in_a_header_and_errors_are_counted_per_status():
    n = 40
    priorities = ["real-time" if i % 4 == 0 else "batch" for i in range(n)]
    with stall_app("--fail-every", "5", "--work-ms", "1") as url:
        df = _open_loop(url, rate=100, n=n, priorities=priorities)
    assert (df["status"] == 500).sum() == 8 and (df["error"] == "http 500").sum() == 8
    assert df.loc[df["status"] == 500, "latency_ns"].isna().all()
    step = summarize_step(
        df, index=0, mode="open-loop", offered_rate_per_s=100, concurrency=None,
        start_ns=int(df["scheduled_ns"].min()), slos=parse_slos(["p99<1s", "errors<1%"]),
    )  # fmt: skip
    assert step.errors == 8 and step.errors_by_status == {"http 500": 8}
    assert set(step.classes) == {"real-time", "batch"}
    assert step.classes["real-time"].count + step.classes["batch"].count == 32
    assert [r.status for r in step.slos] == ["pass", "fail"]
    assert step.goodput_share == 32 / 40


def test_an_unreachable_url_fails_every_request_as_connect():
    from dsprof.load.service import free_port

    url = f"http://127.0.0.1:{free_port()}/work"
    df = _open_loop(url, rate=50, n=5)
    assert (df["error"] == "connect").all() and df["latency_ns"].isna().all()


def test_workers_split_one_plan_and_merge_their_rows():
    from dsprof.load.workers import run_with_workers

    due = schedule_ns(100, arrival="constant", requests=60)
    step = gen.Step(0, "", BODY, [None] * 60, due_ns=due, timeout_s=10)
    with stall_app("--work-ms", "1") as url:
        step.url = url
        log, why = run_with_workers(step, time.time_ns(), 2, None, gen.RequestLog())
    df = requests_frame(log.columns())
    assert why is None and sorted(df["request_id"]) == list(range(60))
    assert set(df["worker"]) == {0, 1} and df["error"].isna().all()
    assert (df.groupby("worker")["request_id"].apply(lambda s: set(s % 2))).to_dict() == {
        0: {0},
        1: {1},
    }
