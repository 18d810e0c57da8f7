"""Per-call cost of `dsprof run` on a tiny model (~20-30 us a call), in microseconds.

A tiny model shows what dsprof adds to every call (hooks, step bookkeeping, the live step file)
rather than what it adds to a long step. Modes, alternated round by round in one invocation so
that machine drift hits them alike, each timing every call with the workload's perf_counter:
  plain       python bench/overhead_workload.py (hidden 16, 1 block, batch 1, 1 thread)
  sampling    dsprof run --no-trace ...
  trace       dsprof run ...            (calls after the traced window)
  baseline    dsprof run --no-trace ... with another dsprof checkout on PYTHONPATH (--baseline-path,
              e.g. the main branch before a change), so old and new are measured side by side
--in-process measures the tracking alone, steadier on a busy shared host: bench/overhead_calls.py
alternates blocks of plain calls and calls under the child's session in one process, by thread
CPU time, for this checkout and the baseline one (alternated round by round).

Each run times its calls twice over, in separate invocations: by wall clock (perf_counter) and by
the calling thread's CPU time (thread_time, which a busy shared host disturbs less: time spent
descheduled is not counted). Prints, per mode, the median call and the mean of the middle 90 % of
calls, and their excess over plain python: the per-call cost (goal: under 3 us outside the traced
window).

    python bench/overhead_tiny.py --rounds 5 --steps 20000 [--baseline-path /path/to/dsprof]
    python bench/overhead_tiny.py --in-process --rounds 6 [--baseline-path ...]
    python bench/overhead.py --tiny ...        (the same)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKLOAD = HERE / "overhead_workload.py"
TINY = ["--hidden", "16", "--layers", "1", "--batch", "1", "--threads", "1"]
# calls left out at the start of every run: first calls, and the traced window (1 + 5 steps)
SKIP = 200


def command(mode: str, steps: int, out_json: Path, runs_dir: Path, clock: str) -> list[str]:
    work = [
        str(WORKLOAD),
        "--steps",
        str(steps),
        *TINY,
        "--clock",
        clock,
        "--json-out",
        str(out_json),
    ]
    if mode == "plain":
        return [sys.executable, *work]
    extra = [] if mode == "trace" else ["--no-trace"]
    return [sys.executable, "-m", "dsprof", "run", "-q", "--no-analyze", "--out", str(runs_dir),
            *extra, *work]  # fmt: skip


def trimmed_mean(values: list[int], cut: float = 0.05) -> float:
    """Mean of the values between the cut and 1 - cut quantiles (machine hiccups left out)."""
    ordered = sorted(values)
    k = int(len(ordered) * cut)
    return statistics.fmean(ordered[k : len(ordered) - k])


def in_process(rounds: int, baseline: Path | None) -> None:
    """bench/overhead_calls.py for this checkout (and the baseline's), alternated."""
    trees = {"candidate": ROOT, **({"baseline": baseline} if baseline else {})}
    deltas: dict[str, list[float]] = {name: [] for name in trees}
    plains: dict[str, list[float]] = {name: [] for name in trees}
    for r in range(rounds):
        for name, path in trees.items() if r % 2 == 0 else reversed(list(trees.items())):
            out = subprocess.run(
                [sys.executable, str(HERE / "overhead_calls.py")],
                check=True, capture_output=True, text=True,
                env={**os.environ, "PYTHONPATH": str(path)},
            )  # fmt: skip
            got = json.loads(out.stdout.strip().splitlines()[-1])
            deltas[name].append(got["dsprof_us"] - got["plain_us"])
            plains[name].append(got["plain_us"])
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    print("in-process, thread CPU time per call (medians over rounds)")
    for name in trees:
        d = deltas[name]
        print(
            f"  {name:<10} plain {statistics.median(plains[name]):6.2f} us  +{statistics.median(d):5.2f} "
            f"us/call (rounds {min(d):.2f}-{max(d):.2f})"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--baseline-path", type=Path, default=None,
                   help="another dsprof checkout, run as the 'baseline' mode")  # fmt: skip
    p.add_argument("--in-process", action="store_true", help="bench/overhead_calls.py instead")
    args = p.parse_args()
    if args.in_process:
        in_process(args.rounds, args.baseline_path)
        return
    modes = ["plain", "sampling", "trace"] + (["baseline"] if args.baseline_path else [])
    clocks = ("wall", "cpu")
    times: dict[tuple[str, str], list[list[int]]] = {(m, c): [] for m in modes for c in clocks}
    with tempfile.TemporaryDirectory(prefix="dsprof-tiny-") as tmp:
        tmpd = Path(tmp)
        for r in range(args.rounds):
            for mode in modes if r % 2 == 0 else list(reversed(modes)):
                for clock in clocks:
                    out = tmpd / f"{mode}-{clock}-{r}.json"
                    path = args.baseline_path if mode == "baseline" else ROOT
                    env = {**os.environ, "PYTHONPATH": str(path)}
                    subprocess.run(
                        command(mode, args.steps, out, tmpd / "runs", clock),
                        check=True,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        env=env,
                        # not the checkout: `python -m dsprof` would import it from the cwd
                        cwd=tmpd,
                    )
                    times[(mode, clock)].append(json.loads(out.read_text())[SKIP:])
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    def stat(mode: str, clock: str, fn: object) -> float:
        per_round = [fn(run) / 1e3 for run in times[(mode, clock)]]  # type: ignore[operator]
        return statistics.median(per_round)

    for clock in clocks:
        base_med = stat("plain", clock, statistics.median)
        base_mean = stat("plain", clock, trimmed_mean)
        print(f"{clock} clock")
        print(f"  {'mode':<10} {'median us':>10} {'+us/call':>9} {'mean90 us':>10} {'+us/call':>9}")
        for m in modes:
            med, mean = stat(m, clock, statistics.median), stat(m, clock, trimmed_mean)
            print(
                f"  {m:<10} {med:>10.2f} {med - base_med:>+9.2f} {mean:>10.2f} "
                f"{mean - base_mean:>+9.2f}"
            )
    print("(medians over rounds of each run's statistic; +us/call is the excess over plain python;")
    print(
        f" goal: sampling and trace under +3 us per call; calls {SKIP}.. of {args.steps} per run)"
    )


if __name__ == "__main__":
    main()
