"""dsprof.core.steps: the one set of rules behind every step figure (exact, hand-made inputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dsprof.core.manifest import StepSummary, summarize_tables
from dsprof.core.steps import (
    COMPILE_STEP_FACTOR,
    MIN_STEPS,
    StepStats,
    iteration_stats,
    iterations,
    main_module,
    measured_durations,
    measured_iterations,
    median_ratio_interval,
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


def test_an_iteration_is_timed_start_to_start_with_the_model_time_beside_it() -> None:
    table = _table([0, 100, 250, 300], [50, 60, 40, 45]).sample(frac=1, random_state=0)
    it = iterations(table)  # step order, whatever the row order
    assert it.basis == "iterations" and it.module == "Net"
    assert list(it.durations_ns) == [100, 150, 50]  # the last call has no successor
    assert it.model_ns is not None and list(it.model_ns) == [50, 60, 40]
    assert list(it.starts_ns) == [0, 100, 250] and list(it.ends_ns) == [100, 250, 300]
    assert len(iterations(None).durations_ns) == 0


def test_marker_steps_are_iterations_without_a_model_figure() -> None:
    table = _table([0, 100, 250], [100, 150, 50])
    table["source"] = "marker"
    it = iterations(table)
    assert it.basis == "markers" and it.model_ns is None
    assert list(it.durations_ns) == [100, 150, 50]
    stats = iteration_stats(table, warmup=0)
    assert stats.label == "iteration" and stats.model_p50_ns is None


def test_one_model_call_is_a_model_call_not_an_iteration() -> None:
    it = iterations(_table([0], [70]))
    assert it.basis == "model-calls" and list(it.durations_ns) == [70]
    assert iteration_stats(_table([0], [70])).label == "model call"


def test_other_root_modules_fall_inside_the_models_iterations() -> None:
    table = pd.concat(
        [_table([0, 10, 30], [5, 6, 7]), _table([20], [2], module="Observer")]
    ).sort_values("start_ns")
    table["step"] = range(4)
    assert main_module(table) == "Net"
    assert list(iterations(table).durations_ns) == [10, 20]
    assert list(iterations(table, module="Observer").durations_ns) == [2]
    assert list(iterations(table, module="NotThere").durations_ns) == [10, 10, 10]


def test_iteration_stats_measure_the_same_iterations_for_model_time() -> None:
    # a 40 ms loop whose model call takes 3 ms; the first iteration is warm-up
    starts = [i * 40 * MS for i in range(11)]
    starts[1] += 500 * MS  # a slow first iteration (warm-up)
    starts[2:] = [s + 500 * MS for s in starts[2:]]
    stats = iteration_stats(_table(starts, [900 * MS] + [3 * MS] * 10), warmup=1)
    assert (stats.count, stats.steps_excluded, stats.basis) == (10, 1, "iterations")
    assert stats.p50_ns == 40 * MS and stats.model_p50_ns == 3 * MS
    assert stats.throughput_per_s == pytest.approx(25.0)  # completions over the window
    assert stats.model_share == pytest.approx(3 / 40)


def _traced_loop(n: int, traced_calls: range) -> pd.DataFrame:
    """n calls 40 ms apart, 60 ms apart (and 9 ms calls instead of 3) while the profiler
    records (the calls in traced_calls)."""
    starts, durations, traced, t = [], [], [], 0
    for i in range(n):
        on = i in traced_calls
        starts.append(t)
        durations.append((9 if on else 3) * MS)
        traced.append(on)
        t += (60 if on else 40) * MS
    table = _table(starts, durations)
    table["traced"] = traced
    return table


def test_traced_iterations_are_left_out_when_enough_untraced_ones_remain() -> None:
    # calls 1-5 traced (dsprof run's default window): iterations 0-5 touch the recording
    table = _traced_loop(16, range(1, 6))
    it, m = measured_iterations(table, warmup=1)
    assert it.traced is not None and list(np.flatnonzero(it.traced)) == [0, 1, 2, 3, 4, 5]
    assert (m.count, m.excluded, m.traced_excluded, m.traced_included) == (15, 1, 5, 0)
    assert set(m.durations_ns) == {40 * MS} and m.model_ns is not None
    assert set(m.model_ns) == {3 * MS}
    stats = iteration_stats(table, warmup=1)
    assert (stats.steps_measured, stats.traced_excluded) == (9, 5)
    assert stats.p50_ns == 40 * MS and stats.model_p50_ns == 3 * MS
    assert stats.throughput_per_s == pytest.approx(25.0)


def test_a_run_with_few_untraced_iterations_keeps_its_traced_ones_and_says_so() -> None:
    table = _traced_loop(9, range(1, 6))  # iterations 6 and 7 alone are untraced
    stats = iteration_stats(table, warmup=1)
    assert (stats.steps_measured, stats.traced_excluded, stats.traced_included) == (7, 0, 5)
    assert stats.p50_ns == 60 * MS
    # a table without the column (a bare trace, older runs) is taken as it is
    untold = iteration_stats(table.drop(columns="traced"), warmup=1)
    assert (untold.steps_measured, untold.traced_excluded, untold.traced_included) == (7, 0, 0)


def test_median_ratio_interval_is_exact_for_constant_samples_and_repeatable() -> None:
    assert median_ratio_interval([10] * 8, [5] * 8) == (2.0, 2.0, 2.0)
    rng = np.random.default_rng(3)
    a, b = rng.normal(100, 5, 30), rng.normal(100, 5, 30)
    ratio, lo, hi = median_ratio_interval(a, b)
    assert lo < ratio < hi and lo < 1 < hi
    assert median_ratio_interval(a, b) == (ratio, lo, hi)


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
    assert (summary.count, summary.p50_ns, summary.model_p50_ns) == (3, 100, 25)
    assert summary.mean_cpu_pct == 60.0  # the first sample has no interval behind it
    assert summary.peak_rss_bytes == 9
    assert summary.mean_gpu_util_pct is None  # sampled, never measured: absent, not 0
    assert summary.peak_cuda_allocated_bytes == 8  # no allocator peak column: the largest seen
    assert summarize_tables(None, None, None, None, 1) == StepSummary(basis="iterations")


def test_a_summary_written_before_traced_iterations_were_left_out_is_recomputed(
    tmp_path: Path,
) -> None:
    from report_synthetic import RUN_ID, make_run

    from dsprof.store.run_store import load_run

    run_dir = make_run(tmp_path)  # its steps: calls 1-3 traced
    run = load_run(run_dir)
    manifest = run.manifest
    assert manifest is not None and run.facts.steps.current
    old = run.facts.steps.model_dump(exclude={"traced_excluded", "traced_included"})
    old.pop("steps_measured")
    old["p50_ns"] = 1  # what an older dsprof wrote; readers must not show it
    (run_dir / "run.json").write_text(
        manifest.model_copy(update={"summary": StepSummary(**old)}).model_dump_json(
            exclude={"summary": {"traced_excluded", "traced_included"}}
        )
    )
    run = load_run(run_dir)
    assert run.manifest is not None and not run.manifest.summary.current
    assert run.facts.steps_source == "the run's tables"
    assert run.facts.steps.traced_excluded == 3 and run.facts.steps.p50_ns != 1
    assert run_dir.name == RUN_ID
