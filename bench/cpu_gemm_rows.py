"""Per-row cost of an fp32 Linear on this CPU as the batch (GEMM rows) grows.

The small-batch analyzer's SMALL_BATCH_ROWS and BATCHING_ROW_GAIN come from this measurement:
run `python bench/cpu_gemm_rows.py` and read where the per-row time stops falling.
Prints, per weight size K x K, the best-of-5 microseconds per row and GFLOP/s for each row count.
"""

from __future__ import annotations

import time

import torch

ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SIZES = (256, 1024, 4096)
# about 0.2 GFLOP per timed batch of calls keeps each point near 10 ms
FLOPS_PER_POINT = 2e8


def per_row_us(rows: int, k: int) -> tuple[float, float]:
    """(microseconds per row, GFLOP/s) of F.linear([rows, k], [k, k]), best of 5."""
    w = torch.randn(k, k)
    x = torch.randn(rows, k)
    calls = max(3, int(FLOPS_PER_POINT / (2 * rows * k * k)))
    best = float("inf")
    with torch.inference_mode():
        for _ in range(3):
            torch.nn.functional.linear(x, w)
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(calls):
                torch.nn.functional.linear(x, w)
            best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6 / rows, 2 * rows * k * k / best / 1e9


def main() -> None:
    """Print the table."""
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for k in SIZES:
        cells = []
        for rows in ROWS:
            us, gflops = per_row_us(rows, k)
            cells.append(f"{rows}:{us:.1f}us/{gflops:.0f}GF")
        print(f"K={k}: " + "  ".join(cells))


if __name__ == "__main__":
    main()
