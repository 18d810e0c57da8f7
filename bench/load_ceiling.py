"""The load generator's own ceiling: how many req/s it sends on schedule against a no-op server.

    python bench/load_ceiling.py                        # rates 500..4000, 1 and 2 workers
    python bench/load_ceiling.py --rates 1000,2000,3000 --seconds 4 --clients aiohttp,httpx

A no-op HTTP/1.1 server (asyncio protocol on uvloop, a fixed 200 answer, keep-alive) runs in its
own process on 127.0.0.1. For each client and offered rate (constant arrivals), one step is sent
and the achieved rate, the p99 and max schedule lag and p99 latency are printed. A rate is "on
schedule" when the achieved rate is within 2 % of the offered one and the p99 lag is under
dsprof.load.generator.MAX_SCHEDULE_LAG_MS: the highest such rate is the ceiling. aiohttp runs
through dsprof's own generator (the code `dsprof load` uses); httpx (when installed) through the
same open-loop structure here, for the comparison that chose the client.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

# the repository, not bench/, first: bench/kernels.py would shadow the `kernels` package
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from dsprof.load import generator as gen  # noqa: E402
from dsprof.load.arrivals import schedule_ns  # noqa: E402
from dsprof.load.plan import RequestTemplate  # noqa: E402
from dsprof.load.service import free_port, probe  # noqa: E402

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


class NoOp(asyncio.Protocol):
    """Answers every request (one per header end) with ANSWER, keeping the connection."""

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep:
                return
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(rest) < length:
                return
            self.buf = rest[length:]
            self.transport.write(ANSWER)


def run_server(port: int) -> None:
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(NoOp, "127.0.0.1", port, backlog=4096))
    loop.run_until_complete(server.serve_forever())


async def httpx_step(url: str, due: np.ndarray) -> gen.RequestLog:
    import httpx

    log = gen.RequestLog()
    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=1024)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        start = time.perf_counter_ns() + 50_000_000
        tasks = set()

        async def one(i: int, t: int) -> None:
            sent = time.perf_counter_ns()
            r = await client.post(url, content=b"{}")
            done = time.perf_counter_ns()
            log.request_id.append(i)
            log.scheduled_ns.append(t)
            log.sent_ns.append(sent)
            log.done_ns.append(done)
            log.status.append(r.status_code)
            log.error.append(None)

        for i, off in enumerate(due):
            t = start + int(off)
            while (now := time.perf_counter_ns()) < t:
                await asyncio.sleep((t - now) / 1e9)
            task = asyncio.ensure_future(one(i, t))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.wait(tasks)
    return log


def measure(client: str, url: str, rate: float, seconds: float, workers: int) -> dict[str, float]:
    due = schedule_ns(rate, arrival="constant", duration_s=seconds)
    if client == "aiohttp":
        from dsprof.load.workers import run_with_workers

        step = gen.Step(0, url, [RequestTemplate(body=b"{}")], [None] * len(due), due_ns=due)
        log, _ = run_with_workers(
            step, time.time_ns() + 100_000_000, workers, None, gen.RequestLog()
        )
    else:
        loop = gen.new_event_loop()
        log = loop.run_until_complete(httpx_step(url, due))
        loop.close()
    sched = np.asarray(log.scheduled_ns, dtype=np.int64)
    sent = np.asarray(log.sent_ns, dtype=np.int64)
    done = np.asarray(log.done_ns, dtype=np.int64)
    ok = sum(1 for e in log.error if e is None)
    lag = (sent - sched) / 1e6
    return {
        "achieved": ok / ((done.max() - sched.min()) / 1e9),
        "lag_p99": float(np.percentile(lag, 99)),
        "lag_max": float(lag.max()),
        "lat_p99": float(np.percentile((done - sched) / 1e6, 99)),
        "errors": len(log.error) - ok,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="500,1000,2000,3000,4000")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--clients", default="aiohttp,httpx")
    p.add_argument("--workers", default="1,2", help="aiohttp only")
    a = p.parse_args()
    port = free_port()
    server = mp.get_context("spawn").Process(target=run_server, args=(port,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port}/"
    while probe(url, 0.5) is not None:
        time.sleep(0.05)
    gen.warm_up()
    print(f"no-op server on {url}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"event loop {gen.event_loop_name()}")  # fmt: skip
    print(f"{'client':<8} {'workers':>7} {'offered':>8} {'achieved':>9} {'lag p99':>8} "
          f"{'lag max':>8} {'lat p99':>8} {'errors':>6}  on schedule")  # fmt: skip
    ceilings: dict[tuple[str, int], float] = {}
    for client in a.clients.split(","):
        if client == "httpx":
            try:
                import httpx  # noqa: F401
            except ImportError:
                print("httpx: not installed, skipped")
                continue
        for workers in [int(w) for w in a.workers.split(",")] if client == "aiohttp" else [1]:
            for rate in [float(r) for r in a.rates.split(",")]:
                m = measure(client, url, rate, a.seconds, workers)
                on = m["achieved"] >= 0.98 * rate and m["lag_p99"] <= gen.MAX_SCHEDULE_LAG_MS
                if on:
                    ceilings[(client, workers)] = max(ceilings.get((client, workers), 0), rate)
                print(f"{client:<8} {workers:>7} {rate:>8.0f} {m['achieved']:>9.0f} "
                      f"{m['lag_p99']:>8.1f} {m['lag_max']:>8.1f} {m['lat_p99']:>8.1f} "
                      f"{m['errors']:>6}  {'yes' if on else 'no'}", flush=True)  # fmt: skip
    print()
    for (client, workers), rate in ceilings.items():
        print(f"ceiling {client} x{workers} worker(s): {rate:.0f} req/s on schedule")
    server.terminate()


if __name__ == "__main__":
    main()
