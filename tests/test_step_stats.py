"""dsprof.core.steps: the one set of rules behind every step figure (exact, hand-made inputs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dsprof.core.manifest import StepSummary, summarize_tables
from dsprof.core.steps import (
    COMPILE_STEP_FACTOR,
    MIN_STEPS,
    StepStats,
    measured_durations,
    step_durations,
    step_stats,
)

MS = 1_000_000


def test_warmup_steps_are_left_out_of_the_figures() -> None:
    stats = step_stats([900 * MS, 10 * MS, 20 * MS, 30 * MS, 40 * MS], warmup=1)
    assert (stats.count, stats.steps_excluded, stats.steps_measured) == (5, 1, 4)
    assert stats.p50_ns == 25 * MS  # linear interpolation between 20 and 30
    assert stats.p99_ns == 39_700_000  # 30 + 0.97 * (40 - 30) ms
    assert stats.mean_ns == 25 * MS
    assert stats.throughput_per_s == pytest.approx(4 / 0.1)


@pytest.mark.parametrize(
    ("durations", "warmup", "measured"),
    [([5], 1, 1), ([5, 6], 2, 2), ([5, 6, 7], 2, 1), ([], 1, 0)],
    ids=["one-step", "as-many-as-warmup", "more-than-warmup", "none"],
)
def test_a_run_no_longer_than_its_warmup_is_summarised_over_all_steps(
    durations: list[int], warmup: int, measured: int
) -> None:
    stats = step_stats(durations, warmup)
    assert stats.steps_measured == measured
    assert (stats.p50_ns is None) == (measured == 0)


def test_compile_steps_are_cut_only_when_asked() -> None:
    durations = [100, 5000, 3000, 10, 11, 12, 10, 11, 12, 10]
    plain = step_stats(durations, warmup=1)
    trimmed = step_stats(durations, warmup=1, exclude_compile=True)
    assert plain.steps_excluded == 1 and plain.p99_ns is not None and plain.p99_ns > 1000
    assert trimmed.steps_excluded == 3 and trimmed.p99_ns == int(np.percentile(durations[3:], 99))


def test_compile_trimming_never_leaves_fewer_than_min_steps() -> None:
    # every step is COMPILE_STEP_FACTOR x slower than the next: trimming stops at MIN_STEPS
    durations = [int(4 * COMPILE_STEP_FACTOR**i) for i in range(12, 0, -1)]
    kept, excluded = measured_durations(durations, 0, exclude_compile=True)
    assert len(kept) == MIN_STEPS and excluded == len(durations) - MIN_STEPS


def _table(starts: list[int], durations: list[int], module: str = "Net") -> pd.DataFrame:
    n = len(starts)
    return pd.DataFrame(
        {
            "step": list(range(n)),
            "start_ns": starts,
            "duration_ns": durations,
            "module": [module] * n,
            "source": ["module"] * n,
        }
    )


def test_step_durations_model_time_or_start_to_start() -> None:
    table = _table([0, 100, 250, 300], [50, 60, 40, 45]).sample(frac=1, random_state=0)
    assert list(step_durations(table)) == [50, 60, 40, 45]  # step order, whatever the row order
    assert list(step_durations(table, start_to_start=True)) == [100, 150, 50]
    assert len(step_durations(None)) == 0


def test_step_durations_of_one_root_module() -> None:
    table = pd.concat([_table([0, 10], [5, 6]), _table([20], [99], module="Observer")])
    table["step"] = range(3)
    assert list(step_durations(table, module="Net")) == [5, 6]
    assert list(step_durations(table, module="NotThere")) == [5, 6, 99]


def test_fix_json_from_before_step_stats_still_reads() -> None:
    old = {"steps_measured": 18, "steps_excluded": 2, "p50_ns": 7}
    stats = StepSummary.model_validate(old)
    assert (stats.count, stats.steps_measured, stats.steps_excluded) == (20, 18, 2)
    assert StepStats.model_validate(stats.model_dump()) == StepStats(
        count=20, steps_excluded=2, p50_ns=7
    )


def test_summary_of_tables() -> None:
    steps = _table([0, 100, 200, 300], [10, 20, 30, 40])
    host = pd.DataFrame({"proc_cpu_pct": [0.0, 50.0, 70.0], "proc_rss_bytes": [1, 9, 3]})
    gpu = pd.DataFrame({"util_gpu_pct": [float("nan"), float("nan")]})
    mem = pd.DataFrame({"allocated_bytes": [5, 8]})
    summary = summarize_tables(steps, host, gpu, mem, warmup=1)
    assert (summary.count, summary.p50_ns) == (4, 30)
    assert summary.mean_cpu_pct == 60.0  # the first sample has no interval behind it
    assert summary.peak_rss_bytes == 9
    assert summary.mean_gpu_util_pct is None  # sampled, never measured: absent, not 0
    assert summary.peak_cuda_allocated_bytes == 8  # no allocator peak column: the largest seen
    assert summarize_tables(None, None, None, None, 1) == StepSummary()
