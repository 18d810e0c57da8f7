"""DynamicBatcher: serve single requests through one batched model call.

Requests arrive one at a time from any thread (`submit` returns a Future, calling the batcher
blocks). A worker thread gathers queued requests into one batch, highest priority class first,
until the batch is full or the oldest request has waited its class's budget, concatenates their
tensors along dim 0, makes one call, and splits the result back per request.

Priority classes (highest first): "real-time" dispatches at once with whatever is queued;
"batch" waits up to max_wait_ms for the batch to fill; "background" waits up to
BACKGROUND_WAIT_FACTOR x max_wait_ms and is taken only after the other classes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

PRIORITY_CLASSES: tuple[str, ...] = ("real-time", "batch", "background")
# background work tolerates more waiting than interactive batch traffic; 4x is this module's
# choice (no standard value exists), tunable per deployment through WAIT_FACTORS
BACKGROUND_WAIT_FACTOR = 4.0
WAIT_FACTORS: dict[str, float] = {
    "real-time": 0.0,
    "batch": 1.0,
    "background": BACKGROUND_WAIT_FACTOR,
}


@dataclass
class _Request:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    priority: str
    arrival_ns: int
    future: Future[Any] = field(default_factory=Future)


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
    """Batch concurrent single requests into one call of `fn` (a model or any callable)."""

    def __init__(
        self, fn: Callable[..., Any], *, max_batch_size: int = 8, max_wait_ms: float = 5.0
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait_ns = int(max_wait_ms * 1e6)
        self.batches: list[int] = []  # size of each call made, for reporting
        self._queues: dict[str, deque[_Request]] = {c: deque() for c in PRIORITY_CLASSES}
        self._cond = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._loop, name="dsprof-batcher", daemon=True)
        self._worker.start()

    def submit(self, *args: Any, priority: str = "batch", **kwargs: Any) -> Future[Any]:
        """Queue one request; the Future resolves to its share of the batched output."""
        if priority not in self._queues:
            raise ValueError(f"unknown priority {priority!r}; one of {PRIORITY_CLASSES}")
        req = _Request(args, kwargs, priority, time.perf_counter_ns())
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._queues[priority].append(req)
            self._cond.notify()
        return req.future

    def __call__(self, *args: Any, priority: str = "batch", **kwargs: Any) -> Any:
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

    def _queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def _deadline_ns(self) -> int:
        """When the batch must go: the earliest arrival plus its class's wait budget."""
        return min(
            q[0].arrival_ns + int(self.max_wait_ns * WAIT_FACTORS[c])
            for c, q in self._queues.items()
            if q
        )

    def _take(self) -> list[_Request]:
        batch: list[_Request] = []
        rows = 0
        for c in PRIORITY_CLASSES:
            q = self._queues[c]
            while q and len(batch) < self.max_batch_size:
                n = batch_size_of(q[0].args, q[0].kwargs)
                if batch and rows + n > self.max_batch_size:
                    return batch
                batch.append(q.popleft())
                rows += n
        return batch

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queued() and not self._closed:
                    self._cond.wait()
                if not self._queued():
                    return
                while not self._closed and self._queued() < self.max_batch_size:
                    remaining = self._deadline_ns() - time.perf_counter_ns()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining / 1e9)
                batch = self._take()
            self._serve(batch)

    def _serve(self, batch: list[_Request]) -> None:
        try:
            sizes = [batch_size_of(r.args, r.kwargs) for r in batch]
            args, kwargs = collate([(r.args, r.kwargs) for r in batch])
            self.batches.append(sum(sizes))
            outputs = split(self.fn(*args, **kwargs), sizes)
        except BaseException as e:  # every waiting caller must hear about it
            for r in batch:
                r.future.set_exception(e)
            return
        for r, out in zip(batch, outputs, strict=True):
            r.future.set_result(out)
