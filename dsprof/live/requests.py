"""Request counters inside a service, and the rates and percentiles read from two snapshots.

Inside the service (only once it has opted in with `dsprof.serve_on_demand()`): `STATS` holds
cumulative counters and Prometheus-style latency buckets. dsprof's DynamicBatcher feeds it for
every request it serves; any other service reports a request with
`dsprof.live.record_request(latency_s)`. Recording is a lock and a few integer additions
(~1 us); while no agent runs, `STATS` is None and nothing is recorded.

Outside (dsprof watch, the Prometheus exporter): the agent answers a snapshot of the counters
(RequestCounters); two snapshots give the request rate and the latency percentiles over the
interval between them, interpolated inside buckets as Prometheus' histogram_quantile does.
"""

from __future__ import annotations

import bisect
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic stays out of the service until the agent answers a snapshot
    from dsprof.core.live import HistogramCounts, RequestCounters

# upper bounds (seconds) of the latency buckets: 1 ms to 60 s, dense where encoder services and
# LLM first tokens live; vLLM's e2e buckets start at 0.3 s, too coarse for a 20 ms BERT call
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
    0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
)  # fmt: skip


class _Histogram:
    """Non-cumulative bucket counts (the last bucket is +Inf); guarded by the owner's lock."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum_s = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.sum_s += seconds

    def snapshot(self) -> HistogramCounts:
        from dsprof.core.live import HistogramCounts

        cumulative, total = [], 0
        for c in self.counts[:-1]:
            total += c
            cumulative.append(total)
        return HistogramCounts(
            bounds_s=list(self.bounds), counts=cumulative, count=self.count, sum_s=self.sum_s
        )


class RequestStats:
    """Cumulative request counters of this process (thread-safe)."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self._lock = threading.Lock()
        self.requests_total = 0
        self.errors_total = 0
        self._latency = _Histogram(bounds)
        self._queue = _Histogram(bounds)
        self._queue_seen = False
        # queues (a batcher) -> how to count their waiting requests; the queues held weakly
        self._waiting: weakref.WeakKeyDictionary[Any, Callable[[Any], int]] = (
            weakref.WeakKeyDictionary()
        )

    def record(self, latency_s: float, queue_s: float | None = None, ok: bool = True) -> None:
        """One finished request: its latency, the part of it spent queued, and whether it failed."""
        with self._lock:
            self.requests_total += 1
            if not ok:
                self.errors_total += 1
            self._latency.observe(latency_s)
            if queue_s is not None:
                self._queue_seen = True
                self._queue.observe(queue_s)

    def add_queue(self, owner: Any, count: Callable[[Any], int]) -> None:
        """Count count(owner) in `waiting` while owner lives (a batcher and its queue length)."""
        self._waiting[owner] = count

    def snapshot(self) -> RequestCounters:
        """The counters now."""
        from dsprof.core.live import RequestCounters

        waiting = None
        queues = list(self._waiting.items())
        if queues:
            waiting = sum(int(count(owner)) for owner, count in queues)
        with self._lock:
            return RequestCounters(
                ts_ns=time.time_ns(),
                requests_total=self.requests_total,
                errors_total=self.errors_total,
                latency=self._latency.snapshot(),
                queue=self._queue.snapshot() if self._queue_seen else None,
                waiting=waiting,
            )


# the process's counters while an on-demand agent runs (dsprof.serve_on_demand()); else None
STATS: RequestStats | None = None
# request queues made before the agent started are added when it starts
_QUEUES: weakref.WeakKeyDictionary[Any, Callable[[Any], int]] = weakref.WeakKeyDictionary()


def enable() -> RequestStats:
    """Start counting requests in this process (idempotent); the agent calls this."""
    global STATS
    if STATS is None:
        stats = RequestStats()
        for owner, count in list(_QUEUES.items()):
            stats.add_queue(owner, count)
        STATS = stats
    return STATS


def record_request(latency_s: float, queue_s: float | None = None, ok: bool = True) -> None:
    """Report one served request to dsprof watch and /metrics (nothing happens without an agent)."""
    stats = STATS
    if stats is not None:
        stats.record(latency_s, queue_s, ok)


def register_queue(owner: Any, count: Callable[[Any], int]) -> None:
    """A request queue whose length, count(owner), `waiting` reports (held weakly)."""
    _QUEUES[owner] = count
    stats = STATS
    if stats is not None:
        stats.add_queue(owner, count)


@dataclass(frozen=True)
class RequestWindow:
    """Requests between two snapshots: rate, errors, latency percentiles (seconds), queue."""

    seconds: float
    requests: int
    rate_per_s: float
    error_share: float | None
    p50_s: float | None
    p99_s: float | None
    queue_p50_s: float | None
    waiting: int | None


def bucket_quantile(
    q: float, bounds: list[float], cumulative: list[int], total: int
) -> float | None:
    """The q-quantile from cumulative bucket counts, as Prometheus' histogram_quantile.

    Linear interpolation inside the bucket that holds the rank; the first bucket starts at 0; a
    rank in the +Inf bucket answers the highest finite bound (a lower bound of the truth).
    """
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0
    for bound, count in zip(bounds, cumulative, strict=True):
        if count >= rank:
            in_bucket = count - lower_count
            if in_bucket <= 0:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / in_bucket
        lower_bound, lower_count = bound, count
    return bounds[-1] if bounds else None


def _delta(a: HistogramCounts | None, b: HistogramCounts | None) -> tuple[list[int], int] | None:
    if b is None:
        return None
    if a is None or a.bounds_s != b.bounds_s or b.count < a.count:
        return list(b.counts), b.count  # first snapshot, or the service restarted its counters
    return [y - x for x, y in zip(a.counts, b.counts, strict=True)], b.count - a.count


def request_window(before: RequestCounters | None, after: RequestCounters) -> RequestWindow | None:
    """What happened between two snapshots (None without a first one to compare against)."""
    if before is None:
        return None
    seconds = (after.ts_ns - before.ts_ns) / 1e9
    if seconds <= 0:
        return None
    restarted = after.requests_total < before.requests_total
    requests = after.requests_total - (0 if restarted else before.requests_total)
    errors = after.errors_total - (0 if restarted else before.errors_total)
    lat = _delta(None if restarted else before.latency, after.latency)
    queue = _delta(None if restarted else before.queue, after.queue)

    def quantile(d: tuple[list[int], int] | None, q: float, bounds: list[float]) -> float | None:
        return bucket_quantile(q, bounds, d[0], d[1]) if d is not None else None

    return RequestWindow(
        seconds=seconds,
        requests=requests,
        rate_per_s=requests / seconds,
        error_share=errors / requests if requests else None,
        p50_s=quantile(lat, 0.5, after.latency.bounds_s),
        p99_s=quantile(lat, 0.99, after.latency.bounds_s),
        queue_p50_s=quantile(queue, 0.5, after.queue.bounds_s) if after.queue else None,
        waiting=after.waiting,
    )
