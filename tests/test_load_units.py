"""dsprof.load's pure parts: SLO parsing and checks, arrivals, requests files, search, HDR."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsprof.core.errors import UsageError
from dsprof.load.arrivals import parse_rates, schedule_ns
from dsprof.load.histogram import LatencyHistogram
from dsprof.load.plan import assign_priorities, parse_mix, read_requests_file
from dsprof.load.search import BRACKET_PRECISION, MAX_STEPS, MaxRateSearcher
from dsprof.load.slo import (
    Measurement,
    check_slos,
    count_good,
    overall,
    parse_slo,
    parse_slos,
    percentile_ci,
    wilson,
)


@pytest.mark.parametrize(
    ("spec", "metric", "op", "target", "priority"),
    [
        ("p99<100ms", "p99", "<", 100.0, None),
        ("p99.9<=2s", "p99.9", "<=", 2000.0, None),
        ("p999<1s", "p99.9", "<", 1000.0, None),
        ("max<500us", "max", "<", 0.5, None),
        ("rps>1000", "rps", ">", 1000.0, None),
        ("throughput>=5/s", "rps", ">=", 5.0, None),
        ("errors<0.1%", "errors", "<", 0.1, None),
        ("real-time:p99<50ms", "p99", "<", 50.0, "real-time"),
    ],
    ids=["p99", "p99.9", "p999", "max-us", "rps", "throughput", "errors", "per-class"],
)
def test_slo_specs_parse(spec, metric, op, target, priority):
    s = parse_slo(spec)
    assert (s.metric, s.op, s.target, s.priority) == (metric, op, target, priority)


def test_ranges_and_seeds():
    r = parse_slo("gpu-util=75..90")
    assert (r.op, r.low, r.high) == ("range", 75.0, 90.0)
    assert r.holds(80) and not r.holds(91) and not r.holds(74.9)
    seeds = parse_slos(["seeds"])
    assert [s.spec for s in seeds] == [
        "p99<100ms",
        "rps>1000",
        "gpu-util=75..90",
        "accuracy-drop<1%",
    ]
    assert len(parse_slos(["p99<1s,errors<1%", "rps>1"])) == 3


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("p99<100", "needs a unit"),
        ("latency<3ms", "unknown metric"),
        ("p99=1ms", "use <, >"),
        ("gpu-util<75..90", "written with ="),
        ("gpu-util=90..75", "low end"),
        ("rps>10ms", "not a unit"),
        ("batch:rps>1", "only latency"),
        ("p100<1ms", "between p0 and p100"),
        ("fast", "the form is"),
    ],
    ids=["no-unit", "metric", "eq", "range-op", "range-order", "unit", "class", "p100", "form"],
)
def test_bad_slo_specs_say_why(spec, message):
    with pytest.raises(UsageError, match=message):
        parse_slo(spec)


def _measurement():
    # real-time: 1..100 ms; batch: 0.1..100 ms in 1000 steps; 2 failures; 10 s
    return Measurement(
        10.0,
        {"real-time": np.arange(1, 101) * 1_000_000, "batch": np.arange(1, 1001) * 100_000},
        failures=2,
    )


def test_slo_checks_with_intervals():
    m = _measurement()
    slos = parse_slos(
        ["p99<100ms", "real-time:p50<40ms", "rps>100", "errors<0.1%", "gpu-util=75..90"]
    )
    m.good = count_good(m.latencies_ns, slos)
    res = {r.spec: r for r in check_slos(slos, m)}
    p99 = res["p99<100ms"]
    assert p99.status == "pass" and p99.measured == pytest.approx(99.0)
    assert p99.ci_low <= p99.measured <= p99.ci_high
    assert res["real-time:p50<40ms"].status == "fail"
    assert res["real-time:p50<40ms"].measured == pytest.approx(50.0)
    assert res["rps>100"].measured == pytest.approx(110.0) and res["rps>100"].status == "pass"
    assert res["errors<0.1%"].status == "fail" and res["errors<0.1%"].measured == pytest.approx(
        200 / 1102
    )
    gpu = res["gpu-util=75..90"]
    assert gpu.status == "not-measured" and gpu.measured is None and "GPU" in gpu.note
    assert overall(list(res.values())) == "fail"
    assert overall([gpu]) == "not-measured" and overall([]) is None


def test_goodput_counts_requests_meeting_every_latency_slo():
    m = _measurement()
    slos = parse_slos(["p99<50ms", "real-time:p99<20ms"])
    # batch: <= 50 ms -> 500 of 1000; real-time: <= 20 ms -> 20 of 100
    assert count_good(m.latencies_ns, slos) == 520
    assert count_good(m.latencies_ns, parse_slos(["rps>1"])) is None


def test_percentile_interval_brackets_the_truth():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(200):
        sample = np.sort(rng.exponential(1.0, 2000))
        _, lo, hi = percentile_ci(sample, 0.99)
        hits += lo <= -math.log(0.01) <= hi
    assert 0.90 <= hits / 200 <= 0.99  # a 95 % interval covers the true p99 about 95 % of the time


def test_wilson_interval():
    lo, hi = wilson(0, 100)
    assert lo == pytest.approx(0, abs=1e-12) and 0.03 < hi < 0.04
    lo, hi = wilson(50, 100)
    assert lo < 0.5 < hi


def test_arrivals_hold_their_rate_and_shape():
    const = schedule_ns(100, arrival="constant", requests=50)
    assert np.all(np.diff(const) == 10_000_000) and const[0] == 0
    poisson = schedule_ns(200, arrival="poisson", duration_s=50, seed=3)
    assert len(poisson) == pytest.approx(10_000, rel=0.05) and poisson.max() < 50e9
    gaps = np.diff(poisson) / 1e9
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(1.0, abs=0.05)  # exponential: CV 1
    bursty = np.diff(schedule_ns(200, arrival="gamma", burstiness=0.25, requests=10_000)) / 1e9
    assert np.mean(bursty) == pytest.approx(1 / 200, rel=0.1)
    assert np.std(bursty) / np.mean(bursty) == pytest.approx(2.0, rel=0.1)  # CV = 1/sqrt(shape)


def test_rate_sweeps():
    assert parse_rates("50") == [50.0]
    assert parse_rates("10..50") == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert parse_rates("10..40:4") == [10.0, 20.0, 30.0, 40.0]
    for bad in ("fast", "50..10", "0", "1..2:0"):
        with pytest.raises(UsageError):
            parse_rates(bad)


def test_requests_file_forms_and_priorities(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text(
        '{"text": "hi", "priority": "real-time"}\n\n'
        '{"body": "raw text", "method": "put", "headers": {"X-A": 1}}\n'
    )
    a, b = read_requests_file(p)
    assert a.body == b'{"text": "hi"}' and a.priority == "real-time"
    assert b.body == b"raw text" and b.method == "PUT" and b.headers["X-A"] == "1"
    mix = parse_mix("real-time=1,batch=3")
    assert mix == {"real-time": 0.25, "batch": 0.75}
    pr = assign_priorities(4000, [a, b], mix, seed=0)
    assert all(c == "real-time" for c in pr[::2])  # the file's own class wins
    assert sum(c == "real-time" for c in pr[1::2]) == pytest.approx(500, rel=0.15)


@pytest.mark.parametrize("true_max", [7.0, 130.0, 1000.0], ids=["below-start", "above", "far"])
def test_max_rate_search_brackets_within_precision(true_max):
    s = MaxRateSearcher(50.0)
    while (rate := s.next_rate()) is not None:
        s.record(rate, rate <= true_max)
    assert len(s.tried) <= MAX_STEPS
    assert s.best is not None and s.best <= true_max
    if s.lowest_fail is not None and s.precision <= BRACKET_PRECISION:
        assert true_max < s.lowest_fail and s.best >= true_max / (1 + BRACKET_PRECISION)


def test_histograms_merge_through_their_encoding():
    a, b = LatencyHistogram(), LatencyHistogram()
    a.record_many_ns([1_000_000] * 990)
    b.record_many_ns([2_000_000_000] * 10)
    merged = LatencyHistogram.decode(a.encode())
    merged.merge(LatencyHistogram.decode(b.encode()))
    assert merged.count == 1000
    assert merged.percentile_ms(50) == pytest.approx(1.0, rel=0.001)
    assert merged.percentile_ms(99.5) == pytest.approx(2000, rel=0.001)
    assert merged.max_ms() == pytest.approx(2000, rel=0.001)
