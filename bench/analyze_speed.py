"""dsprof's trace parsing + full analysis against Holistic Trace Analysis (HTA), side by side.

    python bench/analyze_speed.py                   # the largest shared traces + a generated ~1 GB one
    python bench/analyze_speed.py --no-big          # shared traces only
    python bench/analyze_speed.py --big-hta         # also run HTA on the 1 GB trace (slow, many GB)
    python bench/analyze_speed.py --no-big --no-hta --baseline /tmp/base   # this tree against
        # another source tree (e.g. `git worktree add /tmp/base <tag>`), runs interleaved

Each measurement is a fresh process (so imports count, as they do for a user), timed by wall clock
with its peak RSS from os.wait4's rusage and from sampling the process tree (dsprof's parse worker
included, summed):
    dsprof: `python -m dsprof analyze --json TRACE` (parse + every analyzer)
    HTA:    TraceAnalysis(trace_dir=...) + get_idle_time_breakdown() + get_gpu_kernel_breakdown()
HTA 0.5.0 runs in its own virtual environment (HTA_VENV, created with pip on first use) because
its pins differ from dsprof's. The generated trace repeats a real one (hta/rank0.json.gz) along
time, shifting timestamps, correlation ids and step numbers, until it is GENERATED_BYTES of JSON;
it is written under /tmp and never committed; a ~250 MB one is compared with HTA too (there
parsing, not interpreter start-up, dominates). Each shared-trace row is the best of REPEATS runs.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DSPROF_SHARED_TRACES", "/work/shared/traces"))
TRACES = (
    "tracelens/google_owlv2-large-patch14-ensemble__1016001.json.gz",
    "hta/df_index_resolver.json.gz",
    "kineto/resnet50_num_workers_0/worker0.1623143089861.pt.trace.json.gz",
    "hta/control.json.gz",
    "hta/rank0.json.gz",
)
HTA_VENV = Path(os.environ.get("HTA_VENV", "/tmp/dsprof-hta-venv"))
HTA_VERSION = "0.5.0"
GENERATED_BYTES = 1_000_000_000
# a mid-size generated trace where parsing, not interpreter start-up, dominates both tools
GENERATED_MID_BYTES = 250_000_000
GENERATED_SOURCE = "hta/rank0.json.gz"
REPEATS = 2
HTA_SCRIPT = """
import sys, tempfile, os
from hta.trace_analysis import TraceAnalysis
d = tempfile.mkdtemp()
os.symlink(sys.argv[1], os.path.join(d, os.path.basename(sys.argv[1])))
a = TraceAnalysis(trace_dir=d)
ranks = sorted(a.t.traces)  # the rank from distributedInfo (HTA defaults to rank 0)
a.get_idle_time_breakdown(ranks=ranks, visualize=False)
a.get_gpu_kernel_breakdown(visualize=False)
"""


def measure(
    cmd: list[str], sample_tree: bool = False, env: dict[str, str] | None = None
) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of one child process and its own children; raises if it fails.

    The peak is rusage's (the biggest single process). With sample_tree, also the process tree's
    summed RSS, sampled every 5 ms (dsprof parses in a forked worker while it imports); the
    sampling takes CPU from the measured processes, so those runs are not timed.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    tree_peak = [0]
    done = threading.Event()

    def sample() -> None:
        try:
            root = psutil.Process(proc.pid)
            while not done.is_set():
                total = 0
                for p in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
                tree_peak[0] = max(tree_peak[0], total)
                done.wait(0.005)
        except psutil.Error:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_tree:
        sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    if sample_tree:
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {err[-2000:]}")
    return wall, max(usage.ru_maxrss * 1024, tree_peak[0])  # Linux reports ru_maxrss in KiB


def best_of(cmd: list[str], repeats: int) -> tuple[float, int]:
    """The best wall time of `repeats` plain runs, and the peak RSS of one more, sampled, run."""
    wall = min(measure(cmd)[0] for _ in range(repeats))
    return wall, measure(cmd, sample_tree=True)[1]


def ensure_hta() -> Path:
    """The venv's python, installing holistictraceanalysis==HTA_VERSION on first use."""
    python = HTA_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(HTA_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import hta"], capture_output=True, check=False)
    if probe.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"holistictraceanalysis=={HTA_VERSION}"],
            check=True,
        )
    return python


def uncompressed_size(path: Path) -> int:
    """Bytes of JSON (after gunzip)."""
    if not path.name.endswith(".gz"):
        return path.stat().st_size
    n = 0
    with gzip.open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            n += len(chunk)
    return n


def generate_big_trace(source: Path, out: Path, target_bytes: int) -> Path:
    """Repeat source's events along time until the JSON reaches target_bytes (streamed out)."""
    doc = orjson.loads(
        gzip.decompress(source.read_bytes()) if source.name.endswith(".gz") else source.read_bytes()
    )
    all_events = doc.pop("traceEvents")
    events = [e for e in all_events if e.get("ph") != "M"]
    meta = [e for e in all_events if e.get("ph") == "M"]
    ts = [e["ts"] for e in events if "ts" in e]
    span = max(e.get("ts", 0) + e.get("dur", 0) for e in events) - min(ts) + 1000
    ids = [e.get("args", {}).get("correlation", 0) for e in events] + [
        e.get("id", 0) for e in events
    ]
    id_step = max(i for i in ids if isinstance(i, int)) + 1
    one = len(orjson.dumps(events))
    copies = max(1, target_bytes // one)
    head = orjson.dumps(doc)[:-1] + b', "traceEvents": ['
    with out.open("wb") as f:
        f.write(head)
        f.write(orjson.dumps(meta)[1:-1] + (b"," if meta else b""))
        for k in range(copies):
            shifted = [_shift(e, k * span, k * id_step, k) for e in events]
            body = orjson.dumps(shifted)[1:-1]
            f.write(body + (b"," if k < copies - 1 else b""))
        f.write(b"]}")
    return out


def _shift(e: dict, dt: float, did: int, k: int) -> dict:
    e = dict(e)
    if "ts" in e:
        e["ts"] = e["ts"] + dt
    if isinstance(e.get("id"), int):
        e["id"] += did
    args = e.get("args")
    if isinstance(args, dict):
        args = dict(args)
        for key in ("correlation", "External id", "external id"):
            if isinstance(args.get(key), int):
                args[key] += did
        e["args"] = args
    name = e.get("name", "")
    if k and isinstance(name, str) and name.startswith("ProfilerStep#"):
        e["name"] = f"ProfilerStep#{int(name[13:]) + 1000 * k}"
    return e


def tree_env(root: Path) -> dict[str, str]:
    """The environment that runs the dsprof of the source tree at root."""
    return {**os.environ, "PYTHONPATH": str(root)}


def against(cmd: list[str], baseline: Path, repeats: int) -> tuple[float, float]:
    """Best wall times of cmd with this tree's dsprof and with baseline's, runs interleaved (the
    machine's load drifts alike for both)."""
    this, base = [], []
    for i in range(repeats):
        pair = [(this, ROOT), (base, baseline)]
        for times, root in pair if i % 2 == 0 else pair[::-1]:
            times.append(measure(cmd, env=tree_env(root))[0])
    return min(this), min(base)


def row(
    label: str, path: Path, hta: Path | None, repeats: int, baseline: Path | None = None
) -> None:
    size = uncompressed_size(path)
    cmd = [sys.executable, "-m", "dsprof", "analyze", "--json", str(path)]
    if baseline is not None:
        this, base = against(cmd, baseline, repeats)
        print(
            f"{label:58} {size / 1e6:8.1f} MB | this tree {this:6.2f} s | baseline {base:6.2f} s"
            f" | this / baseline x{this / base:4.2f}",
            flush=True,
        )
        return
    d_wall, d_rss = best_of(cmd, repeats)
    line = f"{label:58} {size / 1e6:8.1f} MB | dsprof {d_wall:6.2f} s {d_rss / 1e6:7.0f} MB ({d_rss / size:4.2f}x)"
    if hta is not None:
        h_wall, h_rss = best_of([str(hta), "-c", HTA_SCRIPT, str(path)], repeats)
        line += f" | HTA {h_wall:6.2f} s {h_rss / 1e6:7.0f} MB | time x{h_wall / d_wall:5.1f}, RSS x{h_rss / d_rss:4.1f}"
    print(line, flush=True)


def main() -> None:
    """Print one line per trace: size, dsprof time/RSS (and RSS / size), HTA, ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-hta", action="store_true", help="measure dsprof only")
    ap.add_argument("--no-big", action="store_true", help="skip the generated ~1 GB trace")
    ap.add_argument("--big-hta", action="store_true", help="run HTA on the generated trace too")
    ap.add_argument("--repeats", type=int, default=REPEATS)
    ap.add_argument(
        "--baseline",
        type=Path,
        help="another source tree of dsprof (a git worktree) to time beside this one, no HTA",
    )
    ap.add_argument(
        "--traces", nargs="*", help="shared traces to measure (paths under the shared folder)"
    )
    args = ap.parse_args()
    hta = None if args.no_hta or args.baseline else ensure_hta()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; best of {args.repeats}; RSS = peak of the process tree"
    )
    for rel in args.traces or TRACES:
        row(rel, SHARED / rel, hta, args.repeats, args.baseline)
    if not args.no_big and args.baseline is None:
        with tempfile.TemporaryDirectory(prefix="dsprof-bench-") as tmp:
            src = SHARED / GENERATED_SOURCE
            mid = generate_big_trace(src, Path(tmp) / "mid.json", GENERATED_MID_BYTES)
            row(f"generated from {GENERATED_SOURCE}", mid, hta, 1)
            mid.unlink()
            big = generate_big_trace(src, Path(tmp) / "big.json", GENERATED_BYTES)
            row(f"generated from {GENERATED_SOURCE}", big, hta if args.big_hta else None, 1)


if __name__ == "__main__":
    main()
