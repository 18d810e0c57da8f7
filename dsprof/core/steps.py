"""Step-time statistics: the one function behind every step figure dsprof shows.

    step_stats(durations_ns, warmup, exclude_compile=False) -> StepStats

The terminal summary and run.json (runner/finalize.py), the report's view-model, the dashboard's
runs list and the fix verdicts all call it; they differ only in the durations they feed in
(`step_durations` picks them from a steps table) and in whether leading compile steps are cut
(the fix verdicts). Which interval counts as a step is decided in `step_durations` alone, so a
new definition of the step changes no consumer.

Rules (module constants):
    warm-up: the first `warmup` steps are left out, unless the run has no more steps than that
        (a short run is summarised over all its steps rather than not at all)
    exclude_compile: then leading steps over COMPILE_STEP_FACTOR x the median of the rest are
        left out too, while more than MIN_STEPS remain (torch.compile's first calls; DESIGN.md:
        "compile time must be excluded from step statistics"; torch.utils.benchmark likewise
        discards warm-up, the factor is dsprof's)
    p50 / p99: numpy's linear-interpolation percentiles, truncated to int ns; mean likewise
    throughput: measured steps / their summed time (steps per second)

Pure: numpy only, no torch, no pandas import (a steps table is read through its columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, computed_field, model_validator

# fewer measured steps than this give no usable verdict interval, and compile-step trimming
# never cuts below it
MIN_STEPS = 5
# a leading step slower than this multiple of the median of the rest is a warm-up/compile step
COMPILE_STEP_FACTOR = 3.0


class StepStats(BaseModel):
    """Step-time figures over the measured steps (None when no step was measured)."""

    count: int = Field(default=0, description="steps recorded, warm-up included")
    steps_excluded: int = Field(default=0, description="warm-up (and compile) steps left out")
    p50_ns: int | None = None
    p99_ns: int | None = None
    mean_ns: int | None = None
    throughput_per_s: float | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def steps_measured(self) -> int:
        """Steps behind p50 / p99 / mean / throughput."""
        return max(self.count - self.steps_excluded, 0)

    @model_validator(mode="before")
    @classmethod
    def _from_measured(cls, data: Any) -> Any:
        # fix.json written before StepStats held `steps_measured` and `steps_excluded` only
        if isinstance(data, dict) and "count" not in data and "steps_measured" in data:
            data = {
                **data,
                "count": int(data["steps_measured"]) + int(data.get("steps_excluded", 0)),
            }
        return data


def measured_durations(
    durations_ns: Sequence[int] | np.ndarray, warmup: int = 0, *, exclude_compile: bool = False
) -> tuple[np.ndarray, int]:
    """The durations the statistics are taken over, and how many were left out (module rules)."""
    d = np.asarray(durations_ns, dtype=np.int64)
    start = warmup if len(d) > warmup else 0
    rest = d[start:]
    if exclude_compile:
        while len(rest) > MIN_STEPS and rest[0] > COMPILE_STEP_FACTOR * np.median(rest[1:]):
            rest = rest[1:]
            start += 1
    return rest, start


def stats_of(measured_ns: np.ndarray, *, count: int, excluded: int) -> StepStats:
    """StepStats of durations already measured (possibly pooled over repeated runs)."""
    stats = StepStats(count=count, steps_excluded=excluded)
    d = np.asarray(measured_ns, dtype=np.int64)
    if len(d):
        stats.p50_ns = int(np.percentile(d, 50))
        stats.p99_ns = int(np.percentile(d, 99))
        stats.mean_ns = int(d.mean())
        total = float(d.sum())
        stats.throughput_per_s = float(len(d) / (total / 1e9)) if total > 0 else None
    return stats


def step_stats(
    durations_ns: Sequence[int] | np.ndarray, warmup: int = 0, *, exclude_compile: bool = False
) -> StepStats:
    """Step-time statistics of one run's step durations, in step order (see the module rules)."""
    measured, excluded = measured_durations(durations_ns, warmup, exclude_compile=exclude_compile)
    return stats_of(measured, count=len(durations_ns), excluded=excluded)


def step_durations(
    steps: Any, *, module: str | None = None, start_to_start: bool = False
) -> np.ndarray:
    """Step durations (int ns, step order) from a steps table (steps.parquet's columns).

    module: only that root module's steps (a script may call other modules at top level, such
        as quantize_dynamic's observers or a tokenizer model, and each such call is a step too).
    start_to_start: for steps that are model calls, the time from one call's start to the next,
        so what the loop does between calls (waiting for data, pre/post-processing) counts; the
        last call has no successor and is dropped. Marker steps are start to start already.
    """
    if steps is None or len(steps) == 0 or "duration_ns" not in steps:
        return np.array([], dtype=np.int64)
    if module is not None and "module" in steps and (steps["module"] == module).any():
        steps = steps[steps["module"] == module]
    if "step" in steps:
        steps = steps.sort_values("step")
    if (
        start_to_start
        and "source" in steps
        and len(steps) > 1
        and (steps["source"] == "module").all()
    ):
        return np.diff(steps["start_ns"].to_numpy(dtype=np.int64))
    return steps["duration_ns"].to_numpy(dtype=np.int64)
