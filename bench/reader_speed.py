"""The trace reader's speed on the shared traces: this checkout against another, interleaved.

    python bench/reader_speed.py --base /work/wt/reader-base           # every shared trace
    python bench/reader_speed.py --base ../old --repeats 9 --only df_index_resolver owlv2
    python bench/reader_speed.py --base ../old --analyze               # + whole `dsprof analyze`

Each sample is a fresh process that imports one checkout's dsprof and times, after its imports:
    parse   dsprof.trace.parse.parse_columns(path): gunzip, JSON, columns, validation (the parse
            worker's whole job, the critical path of `dsprof analyze`), wall clock
    cpu     the same parse's CPU time (time.process_time): on a machine shared with other jobs
            it moves far less with their load than the wall clock does
    load    parse + frames_from_columns (the pandas tables the analyzers read), wall clock
With --analyze, also the wall time of `python -m dsprof analyze --json PATH` (imports, worker,
every analyzer: analyzer changes between the checkouts count there too).
The two checkouts alternate sample by sample (base first on even rounds, this one first on odd
ones), so a change in the machine's load hits both alike; each row prints the medians and the
ratio this/base (< 1: this checkout is faster). The machine's load average is printed at the start
and the end; the TOTAL row sums the medians over the traces.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DSPROF_SHARED_TRACES", "/work/shared/traces"))
REPEATS = 5
TIMEOUT_S = 300
PROBE = """
import gc, json, sys, time
from dsprof.trace.parse import parse_columns
from dsprof.trace.frames import frames_from_columns
t0, c0 = time.perf_counter(), time.process_time()
parsed = parse_columns(sys.argv[1])
t1, c1 = time.perf_counter(), time.process_time()
frames_from_columns(parsed)
t2 = time.perf_counter()
print(json.dumps({"parse": t1 - t0, "cpu": c1 - c0, "load": t2 - t0}))
"""


def traces(only: list[str]) -> list[Path]:
    """Every trace under SHARED (largest first), or those whose path contains one of `only`."""
    found = [p for p in SHARED.rglob("*") if p.is_file() and p.name.endswith((".json", ".json.gz"))]
    found = [p for p in found if not only or any(o in str(p) for o in only)]
    return sorted(found, key=lambda p: -p.stat().st_size)


def _run(cmd: list[str], checkout: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(checkout), "OPENBLAS_NUM_THREADS": "1"}
    # cwd outside both checkouts: `-m dsprof` would import the one in the current directory
    return subprocess.run(cmd, env=env, cwd="/", capture_output=True, timeout=TIMEOUT_S)


def sample(checkout: Path, path: Path, analyze: bool) -> dict[str, float]:
    """One fresh-process measurement of path with checkout's dsprof."""
    proc = _run([sys.executable, "-c", PROBE, str(path)], checkout)
    if proc.returncode != 0:
        raise RuntimeError(f"{checkout}: {path}: {proc.stderr.decode()[-2000:]}")
    out: dict[str, float] = json.loads(proc.stdout)
    if analyze:
        t0 = time.perf_counter()
        proc = _run([sys.executable, "-m", "dsprof", "analyze", "--json", str(path)], checkout)
        if proc.returncode not in (0, 2):
            raise RuntimeError(f"{checkout}: analyze {path}: {proc.stderr.decode()[-2000:]}")
        out["analyze"] = time.perf_counter() - t0
    return out


def main() -> None:
    """One row per trace: median seconds per checkout and measure, and the ratio this/base."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="the checkout to compare against")
    ap.add_argument("--repeats", type=int, default=REPEATS, help="samples per checkout and trace")
    ap.add_argument("--only", nargs="*", default=[], help="substrings of the trace paths to run")
    ap.add_argument("--analyze", action="store_true", help="also time `dsprof analyze --json`")
    args = ap.parse_args()
    checkouts = {"base": args.base.resolve(), "this": ROOT}
    measures = ["parse", "cpu", "load", *(["analyze"] if args.analyze else [])]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} "
        f"at start; medians of {args.repeats} interleaved samples; ratio = this / base"
    )
    print(
        f"{'trace':48} {'MB gz':>6} "
        + " ".join(f"{m + ' base':>11} {m + ' this':>11} {'ratio':>6}" for m in measures)
    )
    totals = {(c, m): 0.0 for c in checkouts for m in measures}
    for path in traces(args.only):
        got: dict[str, list[dict[str, float]]] = {c: [] for c in checkouts}
        for r in range(args.repeats):
            order = list(checkouts) if r % 2 == 0 else list(reversed(checkouts))
            for name in order:
                got[name].append(sample(checkouts[name], path, args.analyze))
        line = f"{str(path.relative_to(SHARED))[:48]:48} {path.stat().st_size / 1e6:6.2f} "
        for m in measures:
            med = {c: statistics.median(s[m] for s in got[c]) for c in checkouts}
            for c in checkouts:
                totals[c, m] += med[c]
            line += f"{med['base']:10.3f}s {med['this']:10.3f}s {med['this'] / med['base']:6.3f} "
        print(line, flush=True)
    line = f"{'TOTAL (sum of medians)':48} {'':6} "
    for m in measures:
        line += f"{totals['base', m]:10.3f}s {totals['this', m]:10.3f}s {totals['this', m] / totals['base', m]:6.3f} "
    print(line)
    print(f"load {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
