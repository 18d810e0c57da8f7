"""A small MLP served from a thread pool, the way sync web handlers call a model.

    python threadpool.py [calls] [workers] [inference_mode|no_grad] [--raise-one]
Prints the number of calls that returned and exits 0 (a raising call is caught like a handler would).
"""

import sys
from concurrent.futures import ThreadPoolExecutor

import torch

calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200
workers = int(sys.argv[2]) if len(sys.argv) > 2 else 4
mode = sys.argv[3] if len(sys.argv) > 3 else "inference_mode"
raise_one = "--raise-one" in sys.argv

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
).eval()


def handle(i: int) -> torch.Tensor:
    ctx = torch.inference_mode() if mode == "inference_mode" else torch.no_grad()
    with ctx:
        x = torch.randn(8, 64 if not (raise_one and i == 7) else 63)
        return model(x)


ok = failed = 0
with ThreadPoolExecutor(workers) as pool:
    for fut in [pool.submit(handle, i) for i in range(calls)]:
        try:
            fut.result()
            ok += 1
        except RuntimeError:
            failed += 1
print(f"calls {calls} ok {ok} failed {failed}")
