"""Per-call CPU cost of dsprof's step tracking, in one process (used by bench/overhead_tiny.py).

Times the tiny model's calls by this thread's CPU time, alternating blocks of plain calls with
blocks run under a ChildSession (what `dsprof run --no-trace` installs in the child), so both
see the same machine state. Prints JSON {"plain_us", "dsprof_us"} (medians over blocks). Run it
with the dsprof checkout to measure first on PYTHONPATH.

    PYTHONPATH=. python bench/overhead_calls.py --blocks 15
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead_workload import make_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, default=15)
    p.add_argument("--calls", type=int, default=3000)
    args = p.parse_args()
    from dsprof.core.child import ChildConfig
    from dsprof.runner import steps
    from dsprof.runner.child import ChildSession
    from dsprof.store.layout import RunPaths

    torch.set_num_threads(1)
    model = make_model(16, 1)
    x = torch.randn(1, 16)

    def block(n: int) -> float:
        t = time.thread_time_ns()
        with torch.no_grad():
            for _ in range(n):
                model(x)
        return (time.thread_time_ns() - t) / n / 1e3

    plain, profiled = [], []
    with tempfile.TemporaryDirectory(prefix="dsprof-calls-") as tmp:
        for i in range(args.blocks):
            block(300)
            plain.append(block(args.calls))
            folder = Path(tmp) / str(i)
            RunPaths(folder).make_dirs()
            session = ChildSession(ChildConfig(run_dir=str(folder), trace=False))
            session.start()
            block(300)  # the first calls: the model is found, its outputs captured
            profiled.append(block(args.calls))
            session.finish("ok", 0, None)
            steps.TRACKER = None
    print(
        json.dumps({"plain_us": statistics.median(plain), "dsprof_us": statistics.median(profiled)})
    )


if __name__ == "__main__":
    main()
