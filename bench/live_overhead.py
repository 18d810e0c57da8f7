"""The on-demand agent's budget, measured on the BERT service example (examples/serve_bert.py).

0. Between captures, per request: the request counters' cost, and a DynamicBatcher round trip
   with them on and off (in-process, alternated: resolvable on a shared machine).
1. Between captures: p99 latency under `dsprof load` with and without the agent
   (`--on-demand`), rounds alternating A B B A ... in one invocation; prints each round, the
   median p99 of each mode and their ratio (goal: within 2 %).
2. A capture of 5 steps while the load runs: seconds from the request to the recording's end
   and to the finished run folder (goal: within 15 s).
3. 20 captures in a row: the service's threads and RSS before and after (goal: healthy, no
   leaked threads, memory growth within noise).

    python bench/live_overhead.py --rounds 6 --rate 4 --duration 20 --layers 2

Numbers depend on the machine and its load: the script prints `uptime` with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsprof.live import control  # noqa: E402
from dsprof.live.trace import TraceRequest, take_trace  # noqa: E402
from dsprof.load.service import free_port, probe  # noqa: E402

SERVE_BERT = ROOT / "examples" / "serve_bert.py"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def start_service(agent: bool, layers: int, port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, str(SERVE_BERT), "--layers", str(layers), "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, *(["--on-demand"] if agent else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    url = f"http://127.0.0.1:{port}/embed"
    deadline = time.monotonic() + 180
    while probe(url, timeout_s=1) is not None or (agent and not control.find_socket([proc.pid])):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.3)
    return proc


def stop_service(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def load_p99_ms(url: str, rate: float, duration: float, out: Path) -> tuple[float, int]:
    """(p99 ms, completed) of one `dsprof load` step against url."""
    out.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        [sys.executable, "-m", "dsprof", "load", url, "--rate", str(rate), "--duration",
         f"{duration}s", "--out", str(out)],
        capture_output=True, text=True, env=_env(), timeout=duration * 4 + 120,
    )  # fmt: skip
    # 3: an SLO failed (none is given); 4: the generator fell behind its schedule (a loaded
    # machine): the p99 is still printed, and the round says so
    if r.returncode not in (0, 3, 4):
        raise RuntimeError(f"dsprof load failed ({r.returncode}): {r.stderr[-2000:]}")
    if r.returncode == 4:
        print("   (dsprof load: the generator fell behind its schedule in this round)")
    run = max(out.iterdir(), key=lambda p: p.stat().st_mtime)
    step = json.loads((run / "load.json").read_text())["steps"][0]
    return float(step["latency"]["p99_ms"]), int(step["completed"])


def overhead(args: argparse.Namespace, work: Path) -> None:
    modes = [False, True, True, False] * ((args.rounds + 3) // 4)
    results: dict[bool, list[float]] = {False: [], True: []}
    print(f"1. p99 under dsprof load, {args.rate:g} req/s for {args.duration:g} s per round")
    for i, agent in enumerate(modes[: args.rounds]):
        port = free_port()
        proc = start_service(agent, args.layers, port)
        try:
            url = f"http://127.0.0.1:{port}/embed"
            load_p99_ms(url, args.rate, 3, work / "warm")  # imports, allocator, batcher
            p99, done = load_p99_ms(url, args.rate, args.duration, work / f"round{i}")
        finally:
            stop_service(proc)
        results[agent].append(p99)
        print(
            f"   round {i}: {'agent   ' if agent else 'no agent'} p99 {p99:8.1f} ms ({done} done)"
        )
    a, b = statistics.median(results[False]), statistics.median(results[True])
    print(f"   median p99: no agent {a:.1f} ms, agent {b:.1f} ms, ratio {b / a:.3f}")


def micro(rounds: int = 10, requests: int = 2000) -> None:
    """What the agent adds per request between captures, resolvable on a shared machine: the
    counters' record() alone, and a DynamicBatcher round trip with the counters on and off,
    alternated round by round in this process."""
    import torch

    from dsprof.live import requests as live_requests
    from dsprof.serving import DynamicBatcher

    stats = live_requests.RequestStats()
    n = 200_000
    t0 = time.perf_counter_ns()
    for _ in range(n):
        stats.record(0.02, 0.001)
    per_record = (time.perf_counter_ns() - t0) / n
    print(f"0. the request counters: record() {per_record:.0f} ns per request")
    x = torch.zeros(1, 8)
    times: dict[bool, list[float]] = {False: [], True: []}
    with DynamicBatcher(lambda t: t + 1, max_batch_size=1, max_wait_ms=0) as batcher:
        for r in range(rounds * 2):
            on = r % 4 in (1, 2)  # off on on off ...
            live_requests.STATS = live_requests.RequestStats() if on else None
            t0 = time.perf_counter_ns()
            for _ in range(requests):
                batcher(x)
            times[on].append((time.perf_counter_ns() - t0) / requests)
    live_requests.STATS = None
    off, on_ = statistics.median(times[False]), statistics.median(times[True])
    print(
        f"   DynamicBatcher round trip (a trivial model): counters off {off / 1e3:.1f} us, on "
        f"{on_ / 1e3:.1f} us per request (median of {rounds} rounds each; ratio {on_ / off:.3f})"
    )


def captures(args: argparse.Namespace, work: Path) -> None:
    port = free_port()
    proc = start_service(True, args.layers, port)
    url = f"http://127.0.0.1:{port}/embed"
    load = subprocess.Popen(
        [sys.executable, "-m", "dsprof", "load", url, "--rate", str(args.rate), "--duration",
         "600s", "--out", str(work / "bg")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
    )  # fmt: skip
    try:
        time.sleep(3)
        print("2. a capture of 5 steps under load")
        for i in range(3):
            r = take_trace(TraceRequest(pid=proc.pid, steps=5, out=work / "traces"))
            c = r.capture
            to_end = (c.ended_ns - c.requested_ns) / 1e9 if c.ended_ns else float("nan")
            print(
                f"   capture {i}: {c.status}, {c.steps_traced} steps; recording ended "
                f"{to_end:.2f} s after the request, run folder complete after {r.seconds:.2f} s"
            )
        print(f"3. {args.cycles} captures in a row (steps=2, no analysis)")
        service = psutil.Process(proc.pid)
        threads0, rss0 = service.num_threads(), service.memory_info().rss
        t0 = time.monotonic()
        for _ in range(args.cycles):
            r = take_trace(TraceRequest(pid=proc.pid, steps=2, out=work / "cycles", analyze=False))
            assert r.capture.status == "ok", r.capture
        time.sleep(1)
        threads1, rss1 = service.num_threads(), service.memory_info().rss
        alive = proc.poll() is None and probe(url, timeout_s=5) is None
        print(
            f"   {time.monotonic() - t0:.1f} s; service answering: {alive}; threads "
            f"{threads0} -> {threads1}; RSS {rss0 / 2**20:.1f} -> {rss1 / 2**20:.1f} MiB "
            f"({(rss1 - rss0) / 2**20:+.1f} MiB)"
        )
    finally:
        load.kill()
        load.wait()
        stop_service(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--rate", type=float, default=4.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    micro()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_overhead:
            overhead(args, Path(tmp))
        captures(args, Path(tmp))
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
