"""Soak check: the thread-pool and run_in_executor scripts under `dsprof run`, N times in a row.

Counts crashes (a non-zero exit, or stdout or stderr that differs from plain python) and runs whose step
count differs from the number of model calls, traced and untraced. Not timed.

    python bench/soak_threads.py --runs 10
    PYTHONPATH=/path/to/other/checkout python bench/soak_threads.py --runs 3   # another dsprof
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

SHAPES = Path(__file__).resolve().parents[1] / "tests" / "data" / "shapes"
CASES = [
    ("threadpool.py", ["200", "4", "inference_mode"], 200),
    ("threadpool.py", ["200", "4", "no_grad"], 200),
    ("executor_async.py", ["50"], 50),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    args = p.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="dsprof-soak-") as tmp:
        for script, script_args, calls in CASES:
            plain = subprocess.run(
                [sys.executable, str(SHAPES / script), *script_args],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            for trace in (True, False):
                codes, counts, same = [], [], 0
                for i in range(args.runs):
                    out = Path(tmp) / f"{script}-{trace}-{i}"
                    cmd = [sys.executable, "-m", "dsprof", "run", "-q", "--no-analyze"]
                    cmd += ["--out", str(out), *([] if trace else ["--no-trace"])]
                    # cwd outside any checkout: `python -m dsprof` imports the one on PYTHONPATH
                    proc = subprocess.run(
                        [*cmd, str(SHAPES / script), *script_args],
                        capture_output=True, text=True, timeout=600, cwd=tmp,
                    )  # fmt: skip
                    codes.append(proc.returncode)
                    same += proc.stdout == plain.stdout and proc.stderr == plain.stderr
                    runs = list(out.iterdir()) if out.exists() else []
                    steps = runs[0] / "metrics" / "steps.parquet" if runs else None
                    counts.append(len(pd.read_parquet(steps)) if steps and steps.exists() else 0)
                bad = sum(c != 0 for c in codes) + sum(n != calls for n in counts)
                bad += args.runs - same
                failures += bad
                label = f"{script} {' '.join(script_args)} {'traced' if trace else 'untraced'}"
                print(
                    f"{label:<44} exit codes {sorted(set(codes))}, output as plain python "
                    f"{same}/{args.runs}, steps {sorted(set(counts))} for {calls} calls"
                )
    print(f"problems: {failures}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
