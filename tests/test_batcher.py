"""DynamicBatcher with a real torch model: correctness, batching, priorities, errors, measuring."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from dsprof.serving import DynamicBatcher
from dsprof.serving.batcher import collate, split
from dsprof.serving.simulate import batch_size_sweep, percentile, simulate_stream


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)
    ).eval()


def test_results_match_single_calls(model):
    xs = [torch.randn(1, 16) for _ in range(12)]
    with torch.inference_mode(), DynamicBatcher(model, max_batch_size=4, max_wait_ms=50) as b:
        futures = [b.submit(x) for x in xs]
        got = [f.result(timeout=10) for f in futures]
        expected = [model(x) for x in xs]
    assert all(torch.allclose(g, e, atol=1e-6) for g, e in zip(got, expected, strict=True))
    assert max(b.batches) == 4 and sum(b.batches) == 12


def test_collate_and_split_round_trip_dict_outputs():
    reqs = [((torch.ones(1, 2) * i,), {"mask": torch.zeros(1, 2), "flag": True}) for i in range(3)]
    args, kwargs = collate(reqs)
    assert args[0].shape == (3, 2) and kwargs["flag"] is True
    parts = split({"out": args[0] * 2, "scalar": torch.tensor(1.0)}, [1, 1, 1])
    assert [float(p["out"][0, 0]) for p in parts] == [0.0, 2.0, 4.0]
    assert all(float(p["scalar"]) == 1.0 for p in parts)


def test_real_time_requests_are_served_before_background():
    order = []
    gate = threading.Event()

    def fn(x):
        gate.wait(5)
        order.extend(int(v) for v in x[:, 0])
        return x

    with DynamicBatcher(fn, max_batch_size=2, max_wait_ms=1) as b:
        first = b.submit(torch.tensor([[0.0]]), priority="real-time")  # occupies the worker
        time.sleep(0.05)
        bg = [b.submit(torch.tensor([[float(i)]]), priority="background") for i in (1, 2)]
        rt = [b.submit(torch.tensor([[float(i)]]), priority="real-time") for i in (3, 4)]
        gate.set()
        for f in [first, *bg, *rt]:
            f.result(timeout=10)
    assert order[0] == 0
    assert order.index(3) < order.index(1) and order.index(4) < order.index(2)


def test_an_exception_reaches_every_caller_and_the_batcher_keeps_serving():
    calls = {"n": 0}

    def fn(x):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("boom")
        return x

    with DynamicBatcher(fn, max_batch_size=2, max_wait_ms=20) as b:
        bad = [b.submit(torch.ones(1, 1)) for _ in range(2)]
        for f in bad:
            with pytest.raises(ValueError, match="boom"):
                f.result(timeout=10)
        assert torch.equal(b(torch.ones(1, 1)), torch.ones(1, 1))


def test_unknown_priority_is_refused(model):
    with DynamicBatcher(model) as b, pytest.raises(ValueError, match="unknown priority"):
        b.submit(torch.randn(1, 16), priority="urgent")


def test_sweep_grows_batches_until_the_limit(model):
    with torch.inference_mode():
        rows = batch_size_sweep(model, ((torch.randn(1, 16),), {}), repeats=3, max_batch=8)
    assert [r["batch_size"] for r in rows] == [1, 2, 4, 8]
    assert all(len(r["latency_ms"]) == 3 and r["throughput_per_s"] > 0 for r in rows)


def test_stream_batches_under_load_and_reports_classes():
    def slow(x):  # a fixed per-call cost, like kernel launches, makes batching pay
        time.sleep(0.01)
        return x * 2

    example = ((torch.ones(1, 4),), {})
    one = simulate_stream(
        slow, example, rate_per_s=200, requests=30, max_batch_size=1, max_wait_ms=0
    )
    dyn = simulate_stream(
        slow, example, rate_per_s=200, requests=30, max_batch_size=8, max_wait_ms=5
    )
    assert one["mean_batch"] == 1 and dyn["mean_batch"] > 1.5
    assert dyn["throughput_per_s"] > 1.5 * one["throughput_per_s"]
    assert set(dyn["classes"]) == {"real-time", "batch", "background"}
    assert dyn["p99_ms"] < one["p99_ms"]


def test_percentile():
    assert percentile([], 50) is None
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 99) == 5
