"""Measuring batching: a batch-size sweep and a simulated Poisson stream of requests.

Both take a callable model and one example request (args, kwargs) with batch dimension 0, such
as the inputs captured at a step; requests in the stream are copies of it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from dsprof.serving.batcher import PRIORITY_CLASSES, DynamicBatcher, Policy, collate

# stop the sweep when one call takes longer than this (an interactive latency budget)
DEFAULT_LATENCY_LIMIT_MS = 1000.0
DEFAULT_MAX_BATCH = 64
# share of requests per priority class in the simulated stream
DEFAULT_MIX: dict[str, float] = {"real-time": 0.2, "batch": 0.6, "background": 0.2}


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no values."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def batch_of(
    example: tuple[tuple[Any, ...], dict[str, Any]], size: int
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """`size` copies of one example request concatenated along dim 0."""
    return collate([example] * size)


def batch_size_sweep(
    fn: Callable[..., Any],
    example: tuple[tuple[Any, ...], dict[str, Any]],
    *,
    repeats: int = 5,
    max_batch: int = DEFAULT_MAX_BATCH,
    latency_limit_ms: float = DEFAULT_LATENCY_LIMIT_MS,
) -> list[dict[str, Any]]:
    """Latency and throughput at batch sizes 1, 2, 4, ... until memory or the latency limit."""
    rows: list[dict[str, Any]] = []
    size = 1
    while size <= max_batch:
        args, kwargs = batch_of(example, size)
        times_ms: list[float] = []
        try:
            fn(*args, **kwargs)  # warm-up: allocator, caches
            for _ in range(repeats):
                t0 = time.perf_counter_ns()
                fn(*args, **kwargs)
                times_ms.append((time.perf_counter_ns() - t0) / 1e6)
        except (RuntimeError, MemoryError) as e:  # CUDA OOM is a RuntimeError subclass
            rows.append({"batch_size": size, "stopped": f"{type(e).__name__}: {e}"[:200]})
            break
        p50 = percentile(times_ms, 50) or 0.0
        rows.append(
            {
                "batch_size": size,
                "latency_ms": times_ms,
                "p50_ms": p50,
                "throughput_per_s": size / (p50 / 1e3) if p50 else None,
            }
        )
        if p50 > latency_limit_ms:
            break
        size *= 2
    return rows


def simulate_stream(
    fn: Callable[..., Any],
    example: tuple[tuple[Any, ...], dict[str, Any]],
    *,
    rate_per_s: float,
    requests: int,
    max_batch_size: int,
    max_wait_ms: float,
    mix: dict[str, float] | None = None,
    seed: int = 0,
    policy: Policy = "priority",
) -> dict[str, Any]:
    """Serve a Poisson stream through a DynamicBatcher; throughput and p50/p99 per class.

    max_batch_size=1 with max_wait_ms=0 is one-at-a-time serving through the same queues
    (policy "fifo": a plain server serves in arrival order). Latency counts from each request's
    scheduled arrival, so a late submit is not hidden.
    """
    rng = random.Random(seed)
    mix = mix or DEFAULT_MIX
    classes = [c for c in PRIORITY_CLASSES if mix.get(c, 0) > 0]
    plan = [
        (rng.expovariate(rate_per_s), rng.choices(classes, [mix[c] for c in classes])[0])
        for _ in range(requests)
    ]
    latencies: dict[str, list[float]] = {c: [] for c in classes}
    lock = threading.Lock()
    batcher = DynamicBatcher(
        fn, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, policy=policy
    )
    args, kwargs = example
    start = time.perf_counter_ns()
    done_ns = [start]

    def record(cls: str, sent: int) -> Callable[[Any], None]:
        def cb(_: Any) -> None:
            now = time.perf_counter_ns()
            with lock:
                latencies[cls].append((now - sent) / 1e6)
                done_ns[0] = max(done_ns[0], now)

        return cb

    futures = []
    due = start
    for gap_s, cls in plan:
        due += int(gap_s * 1e9)
        delay = (due - time.perf_counter_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        f = batcher.submit(*args, priority=cls, **kwargs)
        f.add_done_callback(record(cls, due))
        futures.append(f)
    for f in futures:
        f.result()
    batcher.close()
    elapsed_s = (done_ns[0] - start) / 1e9
    all_lat = [v for vs in latencies.values() for v in vs]
    return {
        "max_batch_size": max_batch_size,
        "max_wait_ms": max_wait_ms,
        "policy": policy,
        "rate_per_s": rate_per_s,
        "requests": requests,
        "throughput_per_s": requests / elapsed_s if elapsed_s else None,
        "mean_batch": sum(batcher.batches) / len(batcher.batches) if batcher.batches else None,
        "p50_ms": percentile(all_lat, 50),
        "p99_ms": percentile(all_lat, 99),
        "classes": {
            c: {"count": len(v), "p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99)}
            for c, v in latencies.items()
        },
    }
