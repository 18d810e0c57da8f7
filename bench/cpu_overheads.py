"""The two CPU costs behind the autograd-in-inference and cpu-threads thresholds, measured here.

    python bench/cpu_overheads.py

1. autograd: per-call time of an 8-layer 256-wide MLP at batch 1 under grad mode and under
   torch.inference_mode, the autograd nodes one call records (distinct "Sequence number"s in a
   torch.profiler trace), and the cost per node (AUTOGRAD_NODE_NS).
2. threads: involuntary context switches per second of a 1024-wide MLP at batch 64 run with
   1, 2, 4 and 8 intra-op threads, each in a fresh process (INVOLUNTARY_CS_PER_CORE).
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time

import torch

REPEATS = 5
CALLS = 200


def _best_call_s(model: torch.nn.Module, x: torch.Tensor, grad: bool) -> float:
    best = float("inf")
    ctx = torch.enable_grad if grad else torch.inference_mode
    with ctx():
        for _ in range(10):
            model(x)
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            for _ in range(CALLS):
                model(x)
            best = min(best, (time.perf_counter() - t0) / CALLS)
    return best


def autograd_cost() -> None:
    """Print grad vs inference_mode per-call time and the cost per recorded node."""
    torch.manual_seed(0)
    layers = [m for _ in range(8) for m in (torch.nn.Linear(256, 256), torch.nn.ReLU())]
    model = torch.nn.Sequential(*layers).eval()
    x = torch.randn(1, 256)
    grad, inference = _best_call_s(model, x, True), _best_call_s(model, x, False)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        model(x)
    nodes = len({e.sequence_nr for e in prof.events() if e.sequence_nr >= 0})
    print(
        f"autograd: grad {grad * 1e3:.3f} ms, inference_mode {inference * 1e3:.3f} ms, "
        f"{nodes} nodes, {(grad - inference) / nodes * 1e9:.0f} ns per node"
    )


def _switches_child(threads: int) -> None:
    torch.set_num_threads(threads)
    model = torch.nn.Sequential(
        torch.nn.Linear(1024, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 1024)
    )
    x = torch.randn(64, 1024)
    with torch.inference_mode():
        for _ in range(5):
            model(x)
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for _ in range(100):
            model(x)
        dt, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"threads {threads}: {dt / 100 * 1e3:.2f} ms/call, "
        f"{(r1.ru_nivcsw - r0.ru_nivcsw) / dt:.0f} involuntary switches/s"
    )


def main() -> None:
    """Run both measurements (the thread counts each in a fresh process)."""
    if len(sys.argv) == 3 and sys.argv[1] == "--threads":
        _switches_child(int(sys.argv[2]))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} default threads")
    autograd_cost()
    for threads in (1, 2, 4, 8):
        subprocess.run([sys.executable, __file__, "--threads", str(threads)], check=True)


if __name__ == "__main__":
    main()
