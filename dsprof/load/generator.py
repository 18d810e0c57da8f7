"""The load generator: asyncio (uvloop when installed) and aiohttp, open or closed loop.

Open loop: each request has a due time from the arrival schedule and is sent then, whether or
not earlier ones have been answered; its latency counts from the due time, so a service that
stalls is charged for every request it kept waiting, including those the generator could only
send late (coordinated omission, as wrk2 corrects it). How late the generator itself sent each
request is recorded too (`sent_ns - scheduled_ns`): a step whose p99 lag exceeds
MAX_SCHEDULE_LAG_MS is marked invalid, never silently wrong.

Closed loop (`concurrency`): N requests in flight, each sent when one is answered; latency is
from the send, which is what the mode measures, and results say "closed-loop".

aiohttp was chosen by measurement: bench/load_ceiling.py sends against a no-op loopback server
with each installed client (see docs/load.md for the numbers).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsprof.load.plan import PRIORITY_HEADER, RequestTemplate

# a step is invalid when the generator sent its requests later than this at p99 (wrk2 and
# vegeta do not check; 10 ms is this module's choice: above asyncio's timer slack of ~1 ms,
# well below the latencies a model service is judged on)
MAX_SCHEDULE_LAG_MS = 10.0
# how many answer bodies of failed requests are kept for logs/ (per run)
KEEP_ERROR_BODIES = 5
ERROR_BODY_BYTES = 2000
# how often the open loop asks whether it should stop (server gone, Ctrl-C)
ABORT_POLL_S = 0.25
CLIENT = "aiohttp"
_TIMING_RE = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*((?:;[^,]*)?)$")


@dataclass
class Step:
    """One load step's plan: the due times (ns from its start, open loop) or a concurrency."""

    index: int
    url: str
    templates: list[RequestTemplate]
    priorities: list[str | None]
    due_ns: np.ndarray | None = None  # open loop
    concurrency: int | None = None  # closed loop
    requests: int | None = None
    duration_s: float | None = None
    timeout_s: float = 30.0
    priority_header: str = PRIORITY_HEADER
    max_connections: int = 1024
    # which requests this process sends (workers split one plan by request index)
    worker: int = 0
    workers: int = 1

    @property
    def planned(self) -> int:
        if self.due_ns is not None:
            return len(self.due_ns)
        return self.requests if self.requests is not None else 0


@dataclass
class RequestLog:
    """Rows of requests.parquet, column by column (cheap to append, cheap to pickle)."""

    request_id: list[int] = field(default_factory=list)
    step: list[int] = field(default_factory=list)
    worker: list[int] = field(default_factory=list)
    priority: list[str | None] = field(default_factory=list)
    scheduled_ns: list[int] = field(default_factory=list)
    sent_ns: list[int] = field(default_factory=list)
    done_ns: list[int] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    error: list[str | None] = field(default_factory=list)
    bytes_sent: list[int] = field(default_factory=list)
    bytes_received: list[int] = field(default_factory=list)
    server_timing: list[dict[str, float]] = field(default_factory=list)
    error_bodies: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.request_id)

    def extend(self, other: RequestLog) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))

    def columns(self) -> dict[str, Any]:
        """Column name -> values; latency_ns from the schedule; Server-Timing metrics spread
        into server_<name>_ns columns (absent when the service sends none)."""
        cols: dict[str, Any] = {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if name not in ("server_timing", "error_bodies")
        }
        cols["latency_ns"] = [
            d - s if d and not e else None
            for d, s, e in zip(self.done_ns, self.scheduled_ns, self.error, strict=True)
        ]
        names = sorted({k for t in self.server_timing for k in t})
        for name in names:
            cols[f"server_{name}_ns"] = [
                int(t[name] * 1e6) if name in t else None for t in self.server_timing
            ]
        return cols


def parse_server_timing(value: str | None) -> dict[str, float]:
    """The Server-Timing header's `name;dur=ms` entries (W3C Server Timing), ms by name."""
    out: dict[str, float] = {}
    if not value:
        return out
    for part in value.split(","):
        m = _TIMING_RE.match(part)
        if not m:
            continue
        for param in m.group(2).split(";"):
            key, _, v = param.strip().partition("=")
            if key == "dur":
                with contextlib.suppress(ValueError):
                    out[re.sub(r"[^a-z0-9_]", "_", m.group(1).lower())] = float(v.strip('"'))
    return out


class _Clock:
    """perf_counter for intervals, anchored once to the Unix epoch for the run folder."""

    def __init__(self) -> None:
        self.epoch0 = time.time_ns()
        self.perf0 = time.perf_counter_ns()

    def epoch(self, perf_ns: int) -> int:
        return self.epoch0 + (perf_ns - self.perf0)

    def perf(self, epoch_ns: int) -> int:
        return self.perf0 + (epoch_ns - self.epoch0)


async def _send(
    session: Any,
    step: Step,
    i: int,
    due_perf: int,
    log: RequestLog,
    clock: _Clock,
) -> None:
    import aiohttp

    template = step.templates[i % len(step.templates)]
    priority = step.priorities[i] if i < len(step.priorities) else None
    headers = dict(template.headers)
    if priority:
        headers[step.priority_header] = priority
    sent = time.perf_counter_ns()
    status, error, received, timing = 0, None, 0, {}
    body_text: bytes | None = None
    try:
        async with session.request(
            template.method, step.url, data=template.body or None, headers=headers
        ) as resp:
            data = await resp.read()
            status, received = resp.status, len(data)
            timing = parse_server_timing(resp.headers.get("Server-Timing"))
            if not 200 <= status < 300:
                error, body_text = f"http {status}", data
    except asyncio.TimeoutError:
        error = "timeout"
    except aiohttp.ClientConnectorError:
        error = "connect"
    except aiohttp.ServerDisconnectedError:
        error = "disconnected"
    except aiohttp.ClientError as e:
        error = type(e).__name__
    done = time.perf_counter_ns()
    log.request_id.append(i)
    log.step.append(step.index)
    log.worker.append(step.worker)
    log.priority.append(priority)
    log.scheduled_ns.append(clock.epoch(due_perf))
    log.sent_ns.append(clock.epoch(sent))
    log.done_ns.append(clock.epoch(done))
    log.status.append(status)
    log.error.append(error)
    log.bytes_sent.append(len(template.body))
    log.bytes_received.append(received)
    log.server_timing.append(timing)
    if body_text is not None and len(log.error_bodies) < KEEP_ERROR_BODIES:
        log.error_bodies.append(
            {
                "request_id": i,
                "status": status,
                "body": body_text[:ERROR_BODY_BYTES].decode("utf-8", "replace"),
            }
        )


async def run_step_async(
    step: Step,
    start_epoch_ns: int,
    should_stop: Callable[[], str | None] | None = None,
    log: RequestLog | None = None,
) -> tuple[RequestLog, str | None]:
    """Send one step's requests into `log` (kept by the caller: Ctrl-C keeps what was answered);
    returns the rows and why it stopped early (None: it did not)."""
    import aiohttp

    clock = _Clock()
    log = log if log is not None else RequestLog()
    stop_reason: list[str | None] = [None]
    connector = aiohttp.TCPConnector(limit=step.max_connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=step.timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # the plan starts at start_epoch_ns, or now if setting up the client took longer (on
        # a busy machine it can): the schedule is relative, so it moves whole, never compressed
        start = max(clock.perf(start_epoch_ns), time.perf_counter_ns())
        tasks: set[asyncio.Task[None]] = set()
        next_poll = 0
        if step.due_ns is not None:
            due_all = step.due_ns
            mine = range(step.worker, len(due_all), step.workers)
            for i in mine:
                due = start + int(due_all[i])
                now = time.perf_counter_ns()
                if now >= next_poll and should_stop is not None:
                    stop_reason[0] = should_stop()
                    if stop_reason[0]:
                        break
                    next_poll = now + int(ABORT_POLL_S * 1e9)
                while due > now:  # the loop's timers may wake a little early: never send early
                    await asyncio.sleep((due - now) / 1e9)
                    now = time.perf_counter_ns()
                t = asyncio.ensure_future(_send(session, step, i, due, log, clock))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
        else:
            await _closed_loop(session, step, start, log, clock, should_stop, stop_reason)
        while tasks:
            if should_stop is not None and (why := should_stop()):
                stop_reason[0] = why
                for t in tasks:
                    t.cancel()
            await asyncio.wait(tasks, timeout=ABORT_POLL_S)
    return log, stop_reason[0]


async def _closed_loop(
    session: Any,
    step: Step,
    start: int,
    log: RequestLog,
    clock: _Clock,
    should_stop: Callable[[], str | None] | None,
    stop_reason: list[str | None],
) -> None:
    now = time.perf_counter_ns()
    if start > now:
        await asyncio.sleep((start - now) / 1e9)
    end = start + int(step.duration_s * 1e9) if step.duration_s is not None else None
    counter = iter(range(step.worker, 1 << 62, step.workers))

    async def user() -> None:
        for i in counter:
            if step.requests is not None and i >= step.requests:
                return
            if end is not None and time.perf_counter_ns() >= end:
                return
            if stop_reason[0] is None and should_stop is not None:
                stop_reason[0] = should_stop()
            if stop_reason[0]:
                return
            await _send(session, step, i, time.perf_counter_ns(), log, clock)

    assert step.concurrency is not None
    await asyncio.gather(*(user() for _ in range(step.concurrency)))


def warm_up() -> None:
    """Import the client before a step's start time is fixed (aiohttp takes ~0.3 s to import)."""
    import aiohttp  # noqa: F401

    new_event_loop().close()  # and uvloop


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (a faster scheduler and socket layer), else asyncio's."""
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def run_step(
    step: Step,
    start_epoch_ns: int | None = None,
    should_stop: Callable[[], str | None] | None = None,
    log: RequestLog | None = None,
) -> tuple[RequestLog, str | None]:
    """Run one step in this thread on a fresh event loop (see run_step_async).

    On Ctrl-C the answered requests stay in `log` and KeyboardInterrupt propagates."""
    log = log if log is not None else RequestLog()
    loop = new_event_loop()
    try:
        return loop.run_until_complete(
            run_step_async(step, start_epoch_ns or time.time_ns(), should_stop, log)
        )
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.close()


def event_loop_name() -> str:
    try:
        import uvloop  # noqa: F401

        return "uvloop"
    except ImportError:
        return "asyncio"
