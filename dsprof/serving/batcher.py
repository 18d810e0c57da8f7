"""DynamicBatcher: serve single requests through one batched model call.

Requests arrive one at a time from any thread (`submit` returns a Future, calling the batcher
blocks). A worker thread gathers queued requests into one batch until the batch is full or the
oldest request has waited its budget, concatenates their tensors along dim 0, makes one call,
and splits the result back per request.

Two policies:

- "fifo": one queue in arrival order; every request waits up to max_wait_ms for the batch to
  fill, whatever its class. This is plain dynamic batching (TorchServe, Triton's default).
- "priority" (default), classes highest first:
  "real-time" is never held behind a forming batch: when one is queued the batch goes at once,
  real-time requests first; and while real-time work is queued the batch is capped at
  `realtime_batch_size` rows, so a real-time request rides in a short call instead of a full one.
  "batch" waits up to max_wait_ms for the batch to fill. "background" waits up to
  BACKGROUND_WAIT_FACTOR x max_wait_ms and is taken only after the other classes.

Why the cap matters (docs/load.md measures it): a real-time request's latency is the rest of the
call in flight plus its own call. When a real-time request was dispatched at once but the batch
was then topped up to max_batch_size with queued lower-priority work, its own call was a full
batch, and under load the call in flight was a full batch as well: its p99 came out at about two
full-batch calls, worse than FIFO batching at moderate load and far worse than one-at-a-time
serving (docs/fix.md once showed 67 -> 309 ms). Capping the batch while real-time work waits
makes its own call short; the lower-priority requests keep the large batches (and the
throughput) whenever no real-time request is waiting.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

from dsprof.live import requests as live_requests

PRIORITY_CLASSES: tuple[str, ...] = ("real-time", "batch", "background")
DEFAULT_PRIORITY = "batch"
Policy = Literal["priority", "fifo"]
POLICIES: tuple[str, ...] = ("priority", "fifo")
# background work tolerates more waiting than interactive batch traffic; 4x is this module's
# choice (no standard value exists), tunable per deployment through WAIT_FACTORS
BACKGROUND_WAIT_FACTOR = 4.0
WAIT_FACTORS: dict[str, float] = {
    "real-time": 0.0,
    "batch": 1.0,
    "background": BACKGROUND_WAIT_FACTOR,
}
# while real-time work is queued, a batch holds at most this share of max_batch_size rows: short
# enough that the real-time call costs little more than a single request's (on BERT-base CPU a
# batch of 4 costs ~2.5x a batch of 1 against ~8x for 16), large enough that the lower-priority
# requests filling it still batch (bench/serving.py measures the trade; a choice of this module)
REALTIME_BATCH_SHARE = 0.5


class BatchedFuture(Future):  # type: ignore[type-arg]
    """A request's Future, with when it was queued, when its call ran, and that call's size."""

    def __init__(self, priority: str, queued_ns: int) -> None:
        super().__init__()
        self.priority = priority
        self.queued_ns = queued_ns
        self.started_ns: int | None = None
        self.finished_ns: int | None = None
        self.batch_rows: int | None = None

    @property
    def queue_wait_ns(self) -> int | None:
        """Time between submit and the start of the call that served it."""
        return None if self.started_ns is None else self.started_ns - self.queued_ns

    @property
    def compute_ns(self) -> int | None:
        """Duration of the call that served it (shared with the rest of its batch)."""
        if self.started_ns is None or self.finished_ns is None:
            return None
        return self.finished_ns - self.started_ns


@dataclass
class _Request:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: BatchedFuture
    rows: int


@dataclass(frozen=True)
class BatchCall:
    """One call the batcher made: its rows, the classes in it, and when it ran (perf_counter ns)."""

    rows: int
    classes: tuple[str, ...]
    started_ns: int
    finished_ns: int


def batch_size_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Rows in a request: dim 0 of its first tensor (1 when it holds none)."""
    import torch

    for v in (*args, *kwargs.values()):
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            return int(v.shape[0])
    return 1


def collate(
    requests: list[tuple[tuple[Any, ...], dict[str, Any]]],
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Concatenate the requests' tensors along dim 0; other arguments are taken from the first."""
    import torch

    def join(values: list[Any]) -> Any:
        first = values[0]
        if isinstance(first, torch.Tensor) and first.dim() > 0:
            return torch.cat(values, dim=0)
        return first

    args0, kwargs0 = requests[0]
    args = tuple(join([r[0][i] for r in requests]) for i in range(len(args0)))
    kwargs = {k: join([r[1][k] for r in requests]) for k in kwargs0}
    return args, kwargs


def split(output: Any, sizes: list[int]) -> list[Any]:
    """Split a batched output back into per-request outputs (tensors sliced along dim 0)."""
    import torch

    total = sum(sizes)
    if isinstance(output, torch.Tensor):
        if output.dim() == 0 or output.shape[0] != total:
            return [output] * len(sizes)
        return list(torch.split(output, sizes, dim=0))
    if isinstance(output, dict):
        parts = {k: split(v, sizes) for k, v in output.items()}
        out = []
        for i in range(len(sizes)):
            d = {k: v[i] for k, v in parts.items()}
            try:  # HF ModelOutput and other dict subclasses rebuild from keyword arguments
                out.append(type(output)(**d))
            except TypeError:
                out.append(d)
        return out
    if isinstance(output, (tuple, list)):
        columns = [split(v, sizes) for v in output]
        return [type(output)(c[i] for c in columns) for i in range(len(sizes))]
    return [output] * len(sizes)


class DynamicBatcher:
    """Batch concurrent single requests into one call of `fn` (a model or any callable).

    policy: "priority" (classes, see the module docstring) or "fifo" (arrival order, one wait).
    realtime_batch_size: rows a batch may hold while real-time work is queued (priority policy);
    by default REALTIME_BATCH_SHARE of max_batch_size, at least 1.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        max_batch_size: int = 8,
        max_wait_ms: float = 5.0,
        policy: Policy = "priority",
        realtime_batch_size: int | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; one of {POLICIES}")
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait_ns = int(max_wait_ms * 1e6)
        self.policy = policy
        self.realtime_batch_size = max(
            1,
            realtime_batch_size
            if realtime_batch_size is not None
            else int(max_batch_size * REALTIME_BATCH_SHARE),
        )
        self.batches: list[int] = []  # rows of each call made, for reporting
        self.calls: deque[BatchCall] = deque(maxlen=10_000)
        # fifo keeps every class in the one "batch" queue, in arrival order
        self._queues: dict[str, deque[_Request]] = {c: deque() for c in PRIORITY_CLASSES}
        self._cond = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._loop, name="dsprof-batcher", daemon=True)
        self._worker.start()
        # dsprof watch and /metrics read the queue's length (only once the service runs an agent)
        live_requests.register_queue(self, _waiting_requests)

    def submit(self, *args: Any, priority: str = DEFAULT_PRIORITY, **kwargs: Any) -> BatchedFuture:
        """Queue one request; the Future resolves to its share of the batched output."""
        if priority not in self._queues:
            raise ValueError(f"unknown priority {priority!r}; one of {PRIORITY_CLASSES}")
        future = BatchedFuture(priority, time.perf_counter_ns())
        req = _Request(args, kwargs, future, batch_size_of(args, kwargs))
        queue = priority if self.policy == "priority" else DEFAULT_PRIORITY
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._queues[queue].append(req)
            self._cond.notify()
        return future

    def __call__(self, *args: Any, priority: str = DEFAULT_PRIORITY, **kwargs: Any) -> Any:
        """Submit and wait: a drop-in for calling the model."""
        return self.submit(*args, priority=priority, **kwargs).result()

    def close(self) -> None:
        """Serve what is queued, then stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._worker.join()

    def __enter__(self) -> DynamicBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def queued(self) -> dict[str, int]:
        """Requests waiting now, per queue (under fifo all wait in "batch")."""
        with self._cond:
            return {c: len(q) for c, q in self._queues.items()}

    def _queued_rows(self) -> int:
        return sum(r.rows for q in self._queues.values() for r in q)

    def _any_queued(self) -> bool:
        return any(self._queues.values())

    def _deadline_ns(self) -> int:
        """When the batch must go: the earliest arrival plus its class's wait budget."""
        if self.policy == "fifo":
            head = self._queues[DEFAULT_PRIORITY][0]
            return head.future.queued_ns + self.max_wait_ns
        return min(
            q[0].future.queued_ns + int(self.max_wait_ns * WAIT_FACTORS[c])
            for c, q in self._queues.items()
            if q
        )

    def _limit(self) -> int:
        """Rows the next batch may hold: capped while a real-time request waits."""
        if self.policy == "priority" and self._queues["real-time"]:
            return min(self.max_batch_size, self.realtime_batch_size)
        return self.max_batch_size

    def _take(self) -> list[_Request]:
        batch: list[_Request] = []
        rows = 0
        limit = self._limit()
        for c in PRIORITY_CLASSES:
            q = self._queues[c]
            while q:
                n = q[0].rows
                if batch and rows + n > limit:
                    return batch
                batch.append(q.popleft())
                rows += n
        return batch

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._any_queued() and not self._closed:
                    self._cond.wait()
                if not self._any_queued():
                    return
                while not self._closed and self._queued_rows() < self._limit():
                    remaining = self._deadline_ns() - time.perf_counter_ns()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining / 1e9)
                batch = self._take()
            self._serve(batch)

    def _serve(self, batch: list[_Request]) -> None:
        sizes = [r.rows for r in batch]
        started = time.perf_counter_ns()
        for r in batch:
            r.future.started_ns = started
            r.future.batch_rows = sum(sizes)
        try:
            args, kwargs = collate([(r.args, r.kwargs) for r in batch])
            self.batches.append(sum(sizes))
            outputs = split(self.fn(*args, **kwargs), sizes)
        except BaseException as e:  # every waiting caller must hear about it
            self._record(batch, sizes, started, ok=False)
            for r in batch:
                r.future.set_exception(e)
            return
        self._record(batch, sizes, started)
        for r, out in zip(batch, outputs, strict=True):
            r.future.set_result(out)

    def _record(
        self, batch: list[_Request], sizes: list[int], started: int, ok: bool = True
    ) -> None:
        finished = time.perf_counter_ns()
        for r in batch:
            r.future.finished_ns = finished
        stats = live_requests.STATS  # None unless the service runs dsprof's on-demand agent
        if stats is not None:
            for r in batch:
                queued = r.future.queued_ns
                stats.record((finished - queued) / 1e9, (started - queued) / 1e9, ok)
        classes = tuple(sorted({r.future.priority for r in batch}))
        self.calls.append(BatchCall(sum(sizes), classes, started, finished))


def _waiting_requests(batcher: DynamicBatcher) -> int:
    """Requests queued in a batcher now (for dsprof.live's request counters)."""
    return sum(batcher.queued().values())
