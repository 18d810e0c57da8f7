"""`--workers N`: one load step sent from N processes, for rates one core cannot send.

Each worker process sends every N-th request of the same plan (so the arrival process is the
plan's, whatever N) from a start time the parent fixes once all workers are ready; the parent
merges their rows. Histograms are built from the merged rows, the same as with one worker.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from dsprof.load import generator as gen

# the workers start this long after the last one says it is ready (imports done)
START_LEAD_S = 0.2


def _worker(conn: Any, step: gen.Step) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    import aiohttp  # noqa: F401  (imported before "ready": not charged to the schedule)

    conn.send("ready")
    start_ns = conn.recv()
    stop = {"why": None}

    def should_stop() -> str | None:
        if conn.poll():
            stop["why"] = conn.recv()
        return stop["why"]

    log, why = gen.run_step(step, start_ns, should_stop)
    conn.send((log, why))
    conn.close()


def run_with_workers(
    step: gen.Step,
    start_ns: int,
    workers: int,
    should_stop: Callable[[], str | None] | None,
    log: gen.RequestLog,
) -> tuple[gen.RequestLog, str | None]:
    """Run one step from `workers` processes (in this process when 1); rows land in `log`."""
    if workers == 1:
        return gen.run_step(step, start_ns, should_stop, log)
    ctx = mp.get_context("spawn")  # no inherited threads or event loops
    pipes, procs = [], []
    for w in range(workers):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(child, replace(step, worker=w, workers=workers)))
        p.start()
        pipes.append(parent)
        procs.append(p)
    why: str | None = None
    try:
        for c in pipes:
            c.recv()
        start_ns = max(start_ns, time.time_ns() + int(START_LEAD_S * 1e9))
        for c in pipes:
            c.send(start_ns)
        pending = set(range(workers))
        while pending:
            for w in list(pending):
                if pipes[w].poll(0.05):
                    part, w_why = pipes[w].recv()
                    log.extend(part)
                    why = why or w_why
                    pending.discard(w)
            if should_stop is not None and why is None and (why := should_stop()):
                for w in pending:
                    pipes[w].send(why)
    except KeyboardInterrupt:
        for w, c in enumerate(pipes):
            if procs[w].is_alive():
                c.send("interrupted")
        for c in pipes:
            if c.poll(5):
                part, _ = c.recv()
                log.extend(part)
        raise
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
    return log, why
