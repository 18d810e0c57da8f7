"""The inference loop that bench/overhead.py times: it measures its own steps with perf_counter.

    python bench/overhead_workload.py --steps 60 [--profiler] [--threads N] --json-out times.json
--profiler wraps the loop in a bare torch.profiler with the same schedule dsprof uses
(1 warm-up step, 5 traced, record_shapes) and exports the trace the same way.
"""

import argparse
import json
import tempfile
import time

import torch
from torch import nn


def make_model(hidden: int, layers: int) -> nn.Module:
    blocks: list[nn.Module] = []
    for _ in range(layers):
        blocks += [
            nn.Linear(hidden, 4 * hidden),
            nn.GELU(),
            nn.Linear(4 * hidden, hidden),
            nn.LayerNorm(hidden),
        ]
    return nn.Sequential(*blocks).eval()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    p.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="time each step by perf_counter, or by this thread's CPU time (steadier on a busy host)",
    )
    p.add_argument("--profiler", action="store_true")
    p.add_argument("--json-out", required=True)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = make_model(args.hidden, args.layers)
    x = torch.randn(args.batch, args.hidden)
    times = []
    prof = None
    if args.profiler:
        from torch.profiler import ProfilerActivity, profile, schedule

        out_dir = tempfile.mkdtemp(prefix="bare-prof-")
        try:  # every thread, as dsprof's window records (torch >= 2.6)
            from torch._C._profiler import _ExperimentalConfig

            extra = {"experimental_config": _ExperimentalConfig(profile_all_threads=True)}
        except (ImportError, TypeError):
            extra = {}
        prof = profile(
            activities=[ProfilerActivity.CPU],
            **extra,
            schedule=schedule(wait=0, warmup=1, active=5, repeat=1),
            on_trace_ready=lambda p: p.export_chrome_trace(f"{out_dir}/trace.json.gz"),
            record_shapes=True,
        )
        prof.start()
    clock = time.thread_time_ns if args.clock == "cpu" else time.perf_counter_ns
    with torch.no_grad():
        for _ in range(args.steps):
            t0 = clock()
            model(x)
            times.append(clock() - t0)
            if prof is not None:
                prof.step()
    if prof is not None:
        prof.stop()
    with open(args.json_out, "w") as f:
        json.dump(times, f)


if __name__ == "__main__":
    main()
