"""The model runs in a multiprocessing.Pool(2): all model work happens in worker processes.

    python pool_workers.py [tasks]
"""

import multiprocessing as mp
import sys

import torch

MODEL = None


def init() -> None:
    global MODEL
    torch.set_num_threads(1)
    torch.manual_seed(0)
    MODEL = torch.nn.Sequential(
        torch.nn.Linear(256, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 256)
    ).eval()


def work(i: int) -> float:
    assert MODEL is not None
    with torch.no_grad():
        total = 0.0
        for _ in range(40):
            total += float(MODEL(torch.randn(64, 256)).sum())
    return total


if __name__ == "__main__":
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    with mp.get_context("fork").Pool(2, initializer=init) as pool:
        results = pool.map(work, range(tasks))
    print("tasks", len(results))
