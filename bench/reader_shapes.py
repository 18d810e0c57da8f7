"""The trace reader's time is linear in the file whatever its shape: one run, ratios side by side.

    python bench/reader_shapes.py                      # this checkout
    python bench/reader_shapes.py --base ../base-wt    # and another checkout, for before/after

Each file is generated under /tmp (never committed) and parsed by `dsprof analyze --json` in a
fresh process (wall clock, best of REPEATS; a run over TIMEOUT_S is cut and shown as such):
    ordinary   SIZE_MB of ordinary events (a real trace's events repeated along time)
    one-event  the same ordinary events, but one op whose args hold a SIZE_MB string
    dims       one op whose Input Dims are SIZE_MB of shapes
    decoys     100,000 "traceEvents" strings before the real key (1.4 MB)
The ratio column divides each row by the ordinary file, of about the same size (the decoys file
is small: its time is the one to read): a reader that is linear whatever the shape keeps it near
1 (the issue measured 44.5 s for a 64 MB event, 28 s for 64 MB of Input Dims).
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "data" / "traces" / "hta" / "rank0.json.gz"
SIZE_MB = 64
REPEATS = 2
TIMEOUT_S = 300


def _events() -> list[dict]:
    doc = orjson.loads(gzip.decompress(SOURCE.read_bytes()))
    return [e for e in doc["traceEvents"] if e.get("ph") != "M"]


def ordinary(path: Path, size: int) -> Path:
    """The real trace's events repeated along time until the events fill size bytes."""
    events = _events()
    span = 10_000_000
    with path.open("wb") as f:
        f.write(b'{"schemaVersion": 1, "traceEvents": [')
        k, written = 0, 0
        while written < size:
            chunk = [{**e, "ts": e["ts"] + k * span} if "ts" in e else e for e in events]
            body = orjson.dumps(chunk)[1:-1]
            if written + len(body) > size:  # the last copy cut at an event's end
                body = body[: body.rfind(b"},{", 0, size - written) + 1]
                if not body:
                    break
            f.write((b"," if k else b"") + body)
            written += len(body) + 1
            k += 1
        f.write(b"]}")
    return path


def one_event(path: Path, size: int, key: str) -> Path:
    events = _events()[:2000]
    t0 = min(e["ts"] for e in events if "ts" in e)
    # "[7,11,13]," is 10 bytes
    value: object = "x" * size if key == "Concrete Inputs" else [[7, 11, 13]] * (size // 10)
    big = {"ph": "X", "cat": "cpu_op", "name": "aten::cat", "pid": 1, "tid": 1, "ts": t0 + 5,
           "dur": 5, "args": {key: value}}  # fmt: skip
    path.write_bytes(orjson.dumps({"schemaVersion": 1, "traceEvents": [*events, big, *events]}))
    return path


def decoys(path: Path) -> Path:
    head = b'{"notes": [' + b",".join([b'"traceEvents"'] * 100_000) + b"], "
    path.write_bytes(head + orjson.dumps({"traceEvents": _events()[:2000]})[1:])
    return path


def timed(checkout: Path, path: Path, repeats: int) -> float | None:
    """Best wall seconds of `dsprof analyze --json path` with checkout's dsprof; None past
    TIMEOUT_S."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "dsprof", "analyze", "--json", str(path)],
                env=env,
                cwd=path.parent,  # not a checkout: `-m dsprof` would import it first
                capture_output=True,
                timeout=TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None
        wall = time.perf_counter() - t0
        if proc.returncode not in (0, 2):
            raise RuntimeError(proc.stderr.decode()[-2000:])
        best = wall if best is None else min(best, wall)
    return best


def main() -> None:
    """Print one line per file shape: size, then per checkout its time and ratio to ordinary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, help="another checkout to time beside this one")
    ap.add_argument("--size-mb", type=int, default=SIZE_MB)
    ap.add_argument("--repeats", type=int, default=REPEATS)
    args = ap.parse_args()
    checkouts = {"this": ROOT, **({"base": args.base.resolve()} if args.base else {})}
    size = args.size_mb * 1_000_000
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="dsprof-shapes-") as tmp:
        files = {
            "ordinary": ordinary(Path(tmp) / "ordinary.json", size),
            "one-event": one_event(Path(tmp) / "one_event.json", size, "Concrete Inputs"),
            "dims": one_event(Path(tmp) / "dims.json", size, "Input Dims"),
            "decoys": decoys(Path(tmp) / "decoys.json"),
        }
        base_times = {
            name: timed(root, files["ordinary"], args.repeats) for name, root in checkouts.items()
        }
        for shape, path in files.items():
            line = f"{shape:10} {path.stat().st_size / 1e6:7.1f} MB"
            for name, root in checkouts.items():
                t = base_times[name] if shape == "ordinary" else timed(root, path, args.repeats)
                ordinary_t = base_times[name]
                if t is None:
                    line += f" | {name}: > {TIMEOUT_S} s"
                else:
                    ratio = f" (x{t / ordinary_t:.2f} ordinary)" if ordinary_t else ""
                    line += f" | {name}: {t:6.2f} s{ratio}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
