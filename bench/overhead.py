"""Collection overhead of `dsprof run`, measured by the workload's own clock.

Four modes, alternated round by round in one invocation so that machine drift hits them alike:
  plain      python bench/overhead_workload.py
  sampling   dsprof run --no-trace bench/overhead_workload.py
  trace      dsprof run bench/overhead_workload.py            (1 warm-up, 5 traced steps)
  bare-prof  python bench/overhead_workload.py --profiler     (torch.profiler, same schedule)
Prints per-mode median step time and the ratios the goals are stated in:
  sampling / plain       (goal: within 2 %)
  trace / bare-prof      (goal: within 5 %)
over all steps after the first, and over the traced window (steps 1-5) alone.

    python bench/overhead.py --rounds 5 --steps 60
    python bench/overhead.py --tiny [--baseline-path CHECKOUT]   # per-call cost on a tiny model

--tiny measures what dsprof adds to every call of a ~20-30 us model instead (see
bench/overhead_tiny.py: plain, --no-trace, traced, and another dsprof checkout side by side).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "overhead_workload.py"
MODES = ("plain", "sampling", "trace", "bare-prof")


def command(mode: str, steps: int, out_json: Path, runs_dir: Path) -> list[str]:
    work = [str(WORKLOAD), "--steps", str(steps), "--json-out", str(out_json)]
    py = [sys.executable]
    if mode == "plain":
        return py + work
    if mode == "bare-prof":
        return [*py, *work, "--profiler"]
    extra = ["--no-trace"] if mode == "sampling" else []
    return [*py, "-m", "dsprof", "run", "-q", "--no-analyze", "--out", str(runs_dir), *extra, *work]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=None, help="steps per run (60; --tiny: 20000)")
    p.add_argument("--tiny", action="store_true", help="per-call cost on a tiny model instead")
    args, rest = p.parse_known_args()
    if args.tiny:
        sys.path.insert(0, str(HERE))
        from overhead_tiny import main as tiny_main

        steps = ["--steps", str(args.steps)] if args.steps else []
        sys.argv = [sys.argv[0], "--rounds", str(args.rounds), *steps, *rest]
        tiny_main()
        return
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    args.steps = args.steps or 60
    times: dict[str, list[list[int]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="dsprof-overhead-") as tmp:
        tmpd = Path(tmp)
        for r in range(args.rounds):
            order = MODES if r % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                out = tmpd / f"{mode}-{r}.json"
                subprocess.run(
                    command(mode, args.steps, out, tmpd / "runs"),
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                times[mode].append(json.loads(out.read_text()))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    def median_ms(mode: str, lo: int, hi: int | None) -> float:
        pooled = [t for run in times[mode] for t in run[lo:hi]]
        return statistics.median(pooled) / 1e6

    def paired(a: str, b: str) -> tuple[float, list[float]]:
        """Median over rounds of (a's median / b's median) within the same round."""
        ratios = [
            statistics.median(ra[1:]) / statistics.median(rb[1:])
            for ra, rb in zip(times[a], times[b], strict=True)
        ]
        return statistics.median(ratios), ratios

    print(f"{'mode':<10} {'median ms (steps 1..)':>22} {'median ms (traced 1-5)':>23}")
    for m in MODES:
        print(f"{m:<10} {median_ms(m, 1, None):>22.3f} {median_ms(m, 1, 6):>23.3f}")
    s_all = median_ms("sampling", 1, None) / median_ms("plain", 1, None)
    t_all = median_ms("trace", 1, None) / median_ms("bare-prof", 1, None)
    t_win = median_ms("trace", 1, 6) / median_ms("bare-prof", 1, 6)
    s_pair, s_rounds = paired("sampling", "plain")
    t_pair, t_rounds = paired("trace", "bare-prof")
    print(
        f"sampling / plain      = {s_all:.3f} pooled, {s_pair:.3f} median of rounds  (goal <= 1.02)"
    )
    print(
        f"trace / bare-prof     = {t_all:.3f} pooled, {t_pair:.3f} median of rounds  (goal <= 1.05)"
    )
    print(f"trace / bare-prof     = {t_win:.3f}  (traced window only)")
    print("per round, sampling/plain: " + " ".join(f"{r:.3f}" for r in s_rounds))
    print("per round, trace/bare-prof: " + " ".join(f"{r:.3f}" for r in t_rounds))


if __name__ == "__main__":
    main()
