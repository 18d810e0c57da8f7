"""small-batch: exact checks on hand-built runs, then real `dsprof run` runs."""

from __future__ import annotations

import pytest
from cpu_synthetic import linear, make_run, profiler_steps, steps_frame
from planted_runs import planted_run

from dsprof.analyzers.small_batch import SmallBatchAnalyzer


def _events(rows: int = 1, k: int = 2048, n: int = 2048, dur_us: float = 3000) -> list[dict]:
    return [
        *profiler_steps(5000, 2),
        *linear(100, dur_us, rows, k, n),
        *linear(5100, dur_us, rows, k, n),
    ]


@pytest.mark.parametrize(
    ("dur_us", "severity", "impact"),
    [(3000, "high", 0.45), (1000, "medium", 0.15)],
    ids=["share-0.6", "share-0.2"],
)
def test_impact_is_the_batching_gain_on_the_small_row_share(tmp_path, dur_us, severity, impact):
    run = make_run(tmp_path, events=_events(dur_us=dur_us), steps=steps_frame([5.0] * 3))
    (f,) = SmallBatchAnalyzer().analyze(run)
    assert (f.category, f.severity, f.impact, f.confidence) == (
        "small-batch",
        severity,
        impact,
        0.8,
    )
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["gemm_rows"] == 1
    assert ev["model_steps"] == 3
    assert ev["small_row_gemm_share"] == pytest.approx(2 * dur_us / 10_000)
    assert ev["small_row_gemm_gflops"] == pytest.approx(
        2 * 2048 * 2048 / (dur_us * 1000), abs=0.005
    )
    assert f.recipes == ["batching"]


@pytest.mark.parametrize(
    "events",
    [_events(rows=16), _events(k=256, n=256)],
    ids=["16-rows", "weights-fit-in-l2"],
)
def test_full_or_cache_resident_gemms_are_not_small_batch(tmp_path, events):
    assert (
        SmallBatchAnalyzer().analyze(
            make_run(tmp_path, events=events, steps=steps_frame([5.0] * 3))
        )
        == []
    )


def test_recorded_input_batch_decides(tmp_path):
    big = {
        "root_inputs": {"Net": [{"name": "args.0", "shape": [32, 2048], "dtype": "torch.float32"}]}
    }
    assert (
        SmallBatchAnalyzer().analyze(
            make_run(tmp_path, events=_events(), steps=steps_frame([5.0] * 3), child_info=big)
        )
        == []
    )
    one = {
        "root_inputs": {"Net": [{"name": "args.0", "shape": [1, 2048], "dtype": "torch.float32"}]}
    }
    (f,) = SmallBatchAnalyzer().analyze(
        make_run(tmp_path, events=_events(), steps=steps_frame([5.0] * 3), child_info=one)
    )
    assert f.confidence == 1.0
    assert {e.metric: e.value for e in f.evidence}["input_batch"] == 1


def test_one_call_or_a_gpu_run_is_not_flagged(tmp_path):
    assert (
        SmallBatchAnalyzer().analyze(make_run(tmp_path, events=_events(), steps=steps_frame([5.0])))
        == []
    )
    gpu = make_run(tmp_path, events=_events(), steps=steps_frame([5.0] * 3), gpus=1)
    assert SmallBatchAnalyzer().analyze(gpu) == []


def test_real_run_batch_one_fires():
    (f,) = SmallBatchAnalyzer().analyze(planted_run("small_batch"))
    assert f.severity in ("medium", "high")
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["gemm_rows"] == 1
    assert ev["model_steps"] == 24


def test_real_run_batch_64_is_clean():
    assert SmallBatchAnalyzer().analyze(planted_run("cpu_fp32_linear")) == []
