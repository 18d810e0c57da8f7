"""The on-demand agent's budget, measured on the BERT service example (examples/serve_bert.py).

0. Between captures, per request: the request counters' cost, and a DynamicBatcher round trip
   with them on and off (in-process, alternated: resolvable on a shared machine).
1. Between captures: p99 latency under dsprof load's generator (open loop, Poisson arrivals)
   with and without the agent. "With" is the same service started with `--on-demand`
   (`dsprof.serve_on_demand()`: the listener thread, the request counters), "without" is it
   started without; all else equal. Each session starts three fresh services, A (no agent),
   B (agent) and A2 (no agent again), and sends them rounds in blocks A B A2 A2 B A (mirrored,
   so a drift of the machine's load weighs alike on each), every round of a block the same
   arrival schedule; from session to session the arms rotate through the positions (start
   order, warm-up order, place in the block: session 1 runs B A2 A A A2 B, ...). A small
   model (2 layers, 128 wide) at a rate well under the service's capacity keeps latency the
   service's time, not queueing, and gives thousands of requests per arm in a few minutes. The services run with `--gc-freeze`: without it, the first full
   collection after start-up (torch and transformers leave ~400k objects: a 0.4-0.7 s stall
   here) falls inside the measured rounds of some services and not others, and p99 says when
   it fell rather than what the agent costs (`--no-gc-freeze` shows it). Prints p99 per arm,
   B over A and A2 pooled (both services without the agent: each service has its own luck)
   and B/A with 95 % intervals (bootstrap in two stages, sessions and then blocks within them;
   the arms of a block stay paired), and A2/A: the noise floor, what two identical services
   differ by here, and, without a bootstrap, the spread of A2/A when the rounds of A and A2 swap
   labels at random (the estimator's own noise). Goal: the agent adds under 2 % to p99, met
   when the pooled ratio's interval ends under 1.02 (12 sessions or more). --save keeps every
   request in a .npz (rewritten after each session), --from-saved reports one or several
   again. --pin puts the services on one CPU and the load generator on the others.
   --in-process: one service per session instead of three, its agent switched on for B's
   rounds and off for A's and A2's (bench/agent_toggle_service.py, by signals; the agent's
   one-time start-up is in every arm): what the running agent costs, without the several
   percent by which two identical processes' p99 differ.
2. A capture of 5 steps while the load runs: seconds from the request to the recording's end
   and to the finished run folder (goal: within 15 s).
3. 20 captures in a row: the service's threads and RSS before and after (goal: healthy, no
   leaked threads, memory growth within noise).

    python bench/live_overhead.py --skip-captures       # parts 0 and 1: ~5 min
    python bench/live_overhead.py --skip-captures --sessions 24 --save p99.npz   # ~20 min
    python bench/live_overhead.py --skip-captures --sessions 24 --in-process     # ~16 min
    python bench/live_overhead.py --skip-overhead       # parts 0, 2 and 3: ~1-2 min

Numbers depend on the machine and its load: the script prints `uptime` with them.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsprof.live import control  # noqa: E402
from dsprof.live.trace import TraceRequest, take_trace  # noqa: E402
from dsprof.load.service import free_port, probe  # noqa: E402

SERVE_BERT = ROOT / "examples" / "serve_bert.py"
# --pin: the services on the first CPU, this script (the load generator) on the rest
SERVICE_CPUS = {min(os.sched_getaffinity(0))}
TOGGLE_SERVICE = ROOT / "bench" / "agent_toggle_service.py"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def start_service(
    agent: bool, args: argparse.Namespace, port: int, toggle: bool = False
) -> subprocess.Popen[bytes]:
    """examples/serve_bert.py with the bench's model and batcher flags, with or without
    `--on-demand` (the one difference); with toggle, bench/agent_toggle_service.py instead
    (serve_bert whose agent SIGUSR1 starts and SIGUSR2 stops)."""
    script = TOGGLE_SERVICE if toggle else SERVE_BERT
    argv = [
        sys.executable, str(script), "--port", str(port), "--layers", str(args.layers),
        "--hidden", str(args.hidden), "--seq", str(args.seq), "--threads", str(args.threads),
        "--max-wait-ms", str(args.max_wait_ms), *([] if args.no_gc_freeze else ["--gc-freeze"]),
    ]  # fmt: skip
    pin = SERVICE_CPUS if args.pin else None
    proc = subprocess.Popen(
        [*argv, *(["--on-demand"] if agent else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
        preexec_fn=(lambda: os.sched_setaffinity(0, pin)) if pin else None,
    )
    return proc


def wait_ready(proc: subprocess.Popen[bytes], agent: bool, port: int) -> None:
    url = f"http://127.0.0.1:{port}/embed"
    deadline = time.monotonic() + 180
    while probe(url, timeout_s=1) is not None or (agent and not control.find_socket([proc.pid])):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.3)


def set_agent(proc: subprocess.Popen[bytes], on: bool) -> None:
    """Switch a toggle service's agent on or off; returns once its socket is there (or gone)
    and the service has had a moment to settle."""
    os.kill(proc.pid, signal.SIGUSR1 if on else signal.SIGUSR2)
    deadline = time.monotonic() + 30
    while (control.find_socket([proc.pid]) is not None) != on:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the service did not switch its agent {'on' if on else 'off'}")
        time.sleep(0.05)
    time.sleep(0.2)


def stop_service(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


BODY = b'{"text": "the agent must cost nothing measurable between captures"}'
# the arms: the service without the agent (A), with it (B), and without it again (A2: A vs A2 is
# the noise floor, what two identical services differ by on this machine at this load)
ARMS = ("A", "B", "A2")
# the budget between captures: the agent may add at most this share to p99
GOAL = 0.02
# fewer sessions than this give no verdict: a bootstrap over a handful of clusters is too narrow
MIN_SESSIONS = 12
ARM_NAMES = {"A": "no agent", "B": "agent", "A2": "no agent (2nd arm)"}
# one block: each arm twice, in mirrored order, so a linear drift of the machine's load over the
# block weighs on every arm alike (ABBA generalised to three arms)
BLOCK = ("A", "B", "A2", "A2", "B", "A")
# BLOCK as positions into a session's arm order (the order rotates from session to session)
BLOCK_POSITIONS = tuple(ARMS.index(a) for a in BLOCK)
# per arm: (session, block, latency from the due time ms, from the send ms), one entry a round
Rounds = dict[str, list[tuple[int, int, np.ndarray, np.ndarray]]]


def load_round(url: str, due_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """One open-loop round of dsprof load's generator against url: (latency from the due time,
    latency from the send) in ms of the answered requests, and how many failed."""
    from dsprof.load import generator as gen
    from dsprof.load.plan import RequestTemplate

    template = RequestTemplate(body=BODY, headers={"Content-Type": "application/json"})
    step = gen.Step(
        index=0, url=url, templates=[template], priorities=[None] * len(due_ns), due_ns=due_ns
    )
    log, _ = gen.run_step(step)
    cols = log.columns()
    ok = np.array([lat is not None for lat in cols["latency_ns"]])
    from_due = np.array([lat for lat in cols["latency_ns"] if lat is not None], float) / 1e6
    sent = np.array(cols["sent_ns"], float)[ok]
    done = np.array(cols["done_ns"], float)[ok]
    return from_due, (done - sent) / 1e6, int((~ok).sum())


def p99(x: np.ndarray) -> float:
    return float(np.percentile(x, 99))


def overhead(args: argparse.Namespace) -> None:
    """p99 with and without the agent: fresh services each session, rounds in balanced blocks,
    the ratio's 95 % interval from a bootstrap over blocks (within sessions), and A2/A beside it.
    """
    from dsprof.load.arrivals import schedule_ns
    from dsprof.load.generator import warm_up

    if args.pin:
        os.sched_setaffinity(0, os.sched_getaffinity(0) - SERVICE_CPUS)
    warm_up()
    per_round = args.rate * args.round_s
    print(
        f"1. p99 under dsprof load's generator (open loop, Poisson {args.rate:g} req/s), agent vs "
        f"none: {args.sessions} sessions x {args.blocks} blocks x {' '.join(BLOCK)}, "
        f"{args.round_s:g} s rounds (~{per_round:.0f} requests each); service: serve_bert.py "
        f"--layers {args.layers} --hidden {args.hidden} --seq {args.seq} --threads "
        f"{args.threads} --max-wait-ms {args.max_wait_ms:g}"
        + ("" if args.no_gc_freeze else " --gc-freeze")
        + (
            "; in process: one service a session, its agent switched on and off"
            if args.in_process
            else "; a fresh service per arm and session"
        )
        + (
            f"; services pinned to CPU {sorted(SERVICE_CPUS)}, the generator to the others"
            if args.pin
            else ""
        )
    )
    # rounds[arm] -> list of (session, block, from_due ms, from_send ms)
    rounds: Rounds = {a: [] for a in ARMS}
    failed = 0
    t_start = time.monotonic()
    for session in range(args.sessions):
        # the arms take turns in every position (start order, warm-up order, place in the
        # block): session s rotates (A, B, A2) by s, so a position's luck falls on each arm alike
        order = ARMS[session % 3 :] + ARMS[: session % 3]
        block_order = [order[i] for i in BLOCK_POSITIONS]
        if args.in_process:
            # one process, the agent switched on for B's rounds and off for A's and A2's (first
            # on once, in the warm-up: its one-time imports are in every arm)
            port = free_port()
            one = start_service(False, args, port, toggle=True)
            procs, ports = dict.fromkeys(ARMS, one), dict.fromkeys(ARMS, port)
        else:
            ports = {arm: free_port() for arm in order}
            procs = {arm: start_service(arm == "B", args, ports[arm]) for arm in order}
        try:
            for arm in order[:1] if args.in_process else order:
                wait_ready(procs[arm], arm == "B" and not args.in_process, ports[arm])
            urls = {arm: f"http://127.0.0.1:{ports[arm]}/embed" for arm in order}
            if args.in_process:
                set_agent(one, True)
            for arm in order:  # imports, allocator, the batcher's first calls, the connection
                load_round(urls[arm], schedule_ns(args.rate, duration_s=2.0, seed=999))
            load0 = os.getloadavg()[0]
            for block in range(args.blocks):
                # one arrival schedule per block: every round of the block sends the same one
                due = schedule_ns(args.rate, duration_s=args.round_s, seed=session * 1000 + block)
                for arm in block_order:
                    if args.in_process:
                        set_agent(one, arm == "B")
                    from_due, from_send, bad = load_round(urls[arm], due)
                    failed += bad
                    rounds[arm].append((session, block, from_due, from_send))
            print(
                f"   session {session}: load average {load0:.2f} -> {os.getloadavg()[0]:.2f}; "
                + ", ".join(
                    f"{ARM_NAMES[a]} p99 {p99(np.concatenate([r[2] for r in rounds[a] if r[0] == session])):.2f} ms"
                    for a in ARMS
                )
            )
        finally:
            for proc in dict.fromkeys(procs.values()):  # each service once
                stop_service(proc)
        if args.save:  # after every session: a long run cut short keeps what it measured
            save_rounds(args.save, rounds, failed, time.monotonic() - t_start)
    seconds = time.monotonic() - t_start
    if args.save:
        print(f"   requests saved to {args.save} (--from-saved reports them again)")
    report_overhead(rounds, failed, args, seconds)


def save_rounds(path: Path, rounds: Rounds, failed: int, seconds: float) -> None:
    """Every answered request of part 1 (arm, session, block, both latencies) as one .npz."""
    arrays: dict[str, Any] = {"failed": np.array(failed), "seconds": np.array(seconds)}
    for arm in ARMS:
        rs = rounds[arm]
        arrays[f"{arm}_session"] = np.concatenate([np.full(len(r[2]), r[0]) for r in rs])
        arrays[f"{arm}_block"] = np.concatenate([np.full(len(r[2]), r[1]) for r in rs])
        arrays[f"{arm}_from_due"] = np.concatenate([r[2] for r in rs])
        arrays[f"{arm}_from_send"] = np.concatenate([r[3] for r in rs])
    np.savez_compressed(path, **arrays)


def load_rounds(path: Path) -> tuple[Rounds, int, float]:
    """save_rounds' file back as rounds (one entry per arm, session and block)."""
    with np.load(path) as z:
        rounds: Rounds = {}
        for arm in ARMS:
            session, block = z[f"{arm}_session"], z[f"{arm}_block"]
            keys = sorted({(int(s), int(b)) for s, b in zip(session, block, strict=True)})
            rounds[arm] = []
            for s, b in keys:
                mask = (session == s) & (block == b)
                rounds[arm].append((s, b, z[f"{arm}_from_due"][mask], z[f"{arm}_from_send"][mask]))
        return rounds, int(z["failed"]), float(z["seconds"])


def report_overhead(
    rounds: Rounds,
    failed: int,
    args: argparse.Namespace,
    seconds: float,
) -> None:
    blocks = sorted({(r[0], r[1]) for r in rounds["A"]})
    n = {a: sum(len(r[2]) for r in rounds[a]) for a in ARMS}
    print(
        f"   {seconds:.0f} s; requests answered per arm: "
        + ", ".join(f"{ARM_NAMES[a]} {n[a]}" for a in ARMS)
        + f"; failed {failed}"
    )
    rng = np.random.default_rng(0)
    sessions = sorted({s for s, _ in blocks})
    # the blocks of each session, as indices into `blocks`
    of_session = [np.array([i for i, k in enumerate(blocks) if k[0] == s]) for s in sessions]
    for column, what in ((2, "latency from the due time (dsprof load's)"), (3, "from the send")):
        # per arm, per block: the block's requests (both rounds of the arm in it)
        by_block = {
            a: [np.concatenate([r[column] for r in rounds[a] if (r[0], r[1]) == b]) for b in blocks]
            for a in ARMS
        }
        # the ratios: (numerator arms, denominator arms); both services without the agent,
        # pooled, are the fairer baseline (each service has its own luck: the noise floor)
        ratios = {
            "agent / no agent (both no-agent arms pooled)": (("B",), ("A", "A2")),
            "agent / no agent (1st arm)": (("B",), ("A",)),
            "noise floor: no agent (2nd arm) / no agent (1st arm)": (("A2",), ("A",)),
        }

        every = np.arange(len(blocks))
        point = {label: ratio(by_block, every, *arms) for label, arms in ratios.items()}
        boot: dict[str, list[float]] = {label: [] for label in ratios}
        for _ in range(args.bootstrap):
            # two stages: sessions with replacement (each its own processes: a service that
            # came up slow is a session's luck), then blocks with replacement within each; a
            # resampled block brings every arm's requests of that block (paired by time)
            chosen = rng.integers(0, len(of_session), size=len(of_session))
            pick = np.concatenate(
                [rng.choice(of_session[i], size=len(of_session[i])) for i in chosen]
            )
            for label, arms in ratios.items():
                boot[label].append(ratio(by_block, pick, *arms))
        print(f"   p99 {what}:")
        for a in ARMS:
            print(f"     {ARM_NAMES[a]:18s} {p99(np.concatenate(by_block[a])):8.2f} ms  (p50 "
                  f"{float(np.median(np.concatenate(by_block[a]))):.2f} ms)")  # fmt: skip
        intervals = {label: np.percentile(boot[label], [2.5, 97.5]) for label in ratios}
        for label in ratios:
            lo, hi = intervals[label]
            print(
                f"     {label}: {point[label]:.3f} (95 % CI {lo:.3f}-{hi:.3f}, "
                f"bootstrap over {len(sessions)} sessions x {len(blocks) // len(sessions)} blocks)"
            )
        # the estimator's own noise, bootstrap-free: the two identical arms' rounds swap labels
        # at random (round by round, within their block) and their p99 ratio is taken again
        ra, rb = [r[column] for r in rounds["A"]], [r[column] for r in rounds["A2"]]
        swaps = []
        for _ in range(args.bootstrap // 4):
            flip = rng.random(len(ra)) < 0.5
            x = np.concatenate([b if f else a for a, b, f in zip(ra, rb, flip, strict=True)])
            y = np.concatenate([a if f else b for a, b, f in zip(ra, rb, flip, strict=True)])
            swaps.append(p99(y) / p99(x))
        lo, hi = np.percentile(swaps, [2.5, 97.5])
        print(
            f"     two identical arms' p99 ratio with their rounds' labels swapped at random: "
            f"95 % of {len(swaps)} swaps within {lo:.3f}-{hi:.3f}"
        )
        upper = intervals["agent / no agent (both no-agent arms pooled)"][1]
        if len(sessions) < MIN_SESSIONS:
            verdict = (
                f"no verdict from {len(sessions)} sessions (a bootstrap needs {MIN_SESSIONS}+)"
            )
        else:
            verdict = "met" if upper < 1 + GOAL else "not shown"
        print(
            f"     goal (the agent adds under {GOAL * 100:g} % to p99): {verdict}; the pooled "
            f"ratio's 95 % interval ends at {upper:.3f} ({(upper - 1) * 100:+.1f} %)"
        )


def ratio(
    by_block: dict[str, list[np.ndarray]],
    pick: np.ndarray,
    num: tuple[str, ...],
    den: tuple[str, ...],
) -> float:
    """p99 of the num arms' requests over p99 of the den arms', in the picked blocks."""

    def arms_p99(arms: tuple[str, ...]) -> float:
        return p99(np.concatenate([by_block[a][i] for a in arms for i in pick]))

    return arms_p99(num) / arms_p99(den)


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
    proc = start_service(True, args, port)
    wait_ready(proc, True, port)
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
        # RSS after every quarter of the cycles: growth that levels off is the allocator and
        # caches settling; growth that keeps its pace to the end would be a leak
        marks = {args.cycles * q // 4 for q in (1, 2, 3, 4)}
        trail = [rss0]
        for cycle in range(1, args.cycles + 1):
            r = take_trace(TraceRequest(pid=proc.pid, steps=2, out=work / "cycles", analyze=False))
            assert r.capture.status == "ok", r.capture
            if cycle in marks:
                trail.append(service.memory_info().rss)
        time.sleep(1)
        threads1, rss1 = service.num_threads(), service.memory_info().rss
        alive = proc.poll() is None and probe(url, timeout_s=5) is None
        print(
            f"   {time.monotonic() - t0:.1f} s; service answering: {alive}; threads "
            f"{threads0} -> {threads1}; RSS {rss0 / 2**20:.1f} -> {rss1 / 2**20:.1f} MiB "
            f"({(rss1 - rss0) / 2**20:+.1f} MiB); after each quarter of the cycles: "
            + ", ".join(f"{(b - a) / 2**20:+.1f}" for a, b in itertools.pairwise(trail))
            + " MiB"
        )
    finally:
        load.kill()
        load.wait()
        stop_service(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=6, help="fresh services each session")
    parser.add_argument("--blocks", type=int, default=2, help="blocks (A B A2 A2 B A) a session")
    parser.add_argument("--round-s", type=float, default=3.0, help="seconds of load a round")
    parser.add_argument("--rate", type=float, default=80.0, help="requests/s (Poisson)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128, help="768: BERT-base's width")
    parser.add_argument("--seq", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="the service's torch threads")
    parser.add_argument("--max-wait-ms", type=float, default=0.0, help="the batcher's wait")
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="services without gc.freeze(): the first full collection after start-up (0.4-0.7 s "
        "here) lands in whichever arm reaches it inside the measured rounds",
    )
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-captures", action="store_true")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="part 1 in one service per session, its agent switched on for B's rounds and off "
        "for A's and A2's (bench/agent_toggle_service.py): two processes' own luck stays out",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="part 1 with the services on one CPU and the load generator on the others "
        "(sched_setaffinity): the two no longer take each other's time slices",
    )
    parser.add_argument("--save", type=Path, help="write part 1's requests to this .npz")
    parser.add_argument(
        "--from-saved",
        type=Path,
        nargs="+",
        help="report part 1 from --save files (several: one run), measuring nothing",
    )
    args = parser.parse_args()
    if args.pin and len(os.sched_getaffinity(0)) < 2:
        parser.error("--pin needs two CPUs or more (one for the services, one for the load)")
    if args.from_saved:
        # several files are one run: their sessions numbered on from one file to the next
        rounds: Rounds = {a: [] for a in ARMS}
        failed, seconds = 0, 0.0
        for path in args.from_saved:
            more, f, sec = load_rounds(path)
            first = 1 + max((r[0] for r in rounds["A"]), default=-1)
            for a in ARMS:
                rounds[a] += [(first + s, b, x, y) for s, b, x, y in more[a]]
            failed, seconds = failed + f, seconds + sec
        print(f"1. p99 agent vs none, from {', '.join(map(str, args.from_saved))}")
        report_overhead(rounds, failed, args, seconds)
        return
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    micro()
    if not args.skip_overhead:
        overhead(args)
    if not args.skip_captures:
        with tempfile.TemporaryDirectory() as tmp:
            captures(args, Path(tmp))
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
