"""torch.cuda.memory_stats() at step ends, in the profiled process."""

from __future__ import annotations

import time
from typing import Any

import torch

# memory_stats() key -> column name in metrics/cuda_memory.parquet
STAT_COLUMNS = {
    "allocated_bytes.all.current": "allocated_bytes",
    "reserved_bytes.all.current": "reserved_bytes",
    "active_bytes.all.current": "active_bytes",
    "inactive_split_bytes.all.current": "inactive_split_bytes",
    "allocated_bytes.all.peak": "allocated_peak_bytes",
    "reserved_bytes.all.peak": "reserved_peak_bytes",
    "num_alloc_retries": "num_alloc_retries",
    "num_ooms": "num_ooms",
    "num_device_alloc": "num_device_alloc",
    "num_device_free": "num_device_free",
}


def available() -> tuple[bool, str]:
    """(ok, reason): CUDA must be usable and initialised by the script."""
    if not torch.cuda.is_available():
        return False, "torch.cuda.is_available() is False (no CUDA GPU or a CPU build of torch)"
    return True, ""


def sample(step: int) -> list[dict[str, Any]]:
    """One row per initialised CUDA device; empty when the script has not touched CUDA."""
    if not torch.cuda.is_initialized():
        return []
    rows = []
    now = time.time_ns()
    for device in range(torch.cuda.device_count()):
        stats = torch.cuda.memory_stats(device)
        if not stats:
            continue
        row: dict[str, Any] = {"step": step, "ts_ns": now, "device": device}
        for key, col in STAT_COLUMNS.items():
            if key in stats:
                row[col] = int(stats[key])
        rows.append(row)
    return rows
