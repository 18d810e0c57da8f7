"""small-batch: exact checks on hand-built runs, then real `dsprof run` runs."""

from __future__ import annotations

import pytest
from cpu_synthetic import (
    gpu_trace_run,
    host_frame,
    kernel,
    linear,
    make_run,
    profiler_steps,
    steps_frame,
)
from planted_runs import planted_run

from dsprof.analyzers import analyze_run
from dsprof.analyzers.autograd_in_inference import AutogradInInferenceAnalyzer
from dsprof.analyzers.small_batch import SmallBatchAnalyzer


def _events(rows: int = 1, k: int = 2048, n: int = 2048, dur_us: float = 3000) -> list[dict]:
    return [
        *profiler_steps(5000, 2),
        *linear(100, dur_us, rows, k, n),
        *linear(5100, dur_us, rows, k, n),
    ]


@pytest.mark.parametrize(
    ("step_ms", "gap_ms", "severity", "impact"),
    [(4.0, 1.0, "high", 0.6), (1.0, 4.0, "medium", 0.15)],
    ids=["model-0.8", "model-0.2"],
)
def test_impact_is_the_batching_gain_on_the_model_share(
    tmp_path, step_ms, gap_ms, severity, impact
):
    steps = steps_frame([step_ms] * 3, gap_ms=gap_ms)
    run = make_run(tmp_path, events=_events(dur_us=800), steps=steps)
    (f,) = SmallBatchAnalyzer().analyze(run)
    assert (f.category, f.severity, f.impact, f.confidence) == (
        "small-batch",
        severity,
        impact,
        0.8,
    )
    ev = {e.metric: e.value for e in f.evidence}
    assert (ev["gemm_rows"], ev["model_steps"], ev["starved_gemm_share"]) == (1, 3, 1.0)
    assert ev["model_share"] == step_ms / (step_ms + gap_ms)
    assert ev["starved_gemm_gflops"] == pytest.approx(2 * 2048 * 2048 / 800_000, abs=0.005)
    assert f.recipes == ["batching"]


@pytest.mark.parametrize(
    "events",
    [
        _events(rows=8),
        _events(k=128, n=256),  # 32768-element weight: dispatch-bound, launch-overhead's
        [
            *_events(dur_us=1500),
            *linear(1700, 3200, 64, 2048, 2048),
            *linear(6700, 3200, 64, 2048, 2048),
        ],
    ],
    ids=["8-rows", "tiny-weights", "mostly-full-gemms"],
)
def test_not_batch_starved(tmp_path, events):
    run = make_run(tmp_path, events=events, steps=steps_frame([4.0] * 2))
    assert SmallBatchAnalyzer().analyze(run) == []


def test_cpu_use_is_evidence(tmp_path):
    host = host_frame(0.02, cpu_pct=60.0, hz=1000)
    run = make_run(
        tmp_path,
        events=_events(),
        steps=steps_frame([4.0] * 3, gap_ms=1.0),
        host=host,
        child_info={"usable_cpus": 2, "torch_num_threads": 2},
    )
    (f,) = SmallBatchAnalyzer().analyze(run)
    assert {e.metric: e.value for e in f.evidence}["cpu_utilisation"] == 30.0


def test_recorded_input_batch_decides(tmp_path):
    big = {
        "root_inputs": {"Net": [{"name": "args.0", "shape": [32, 2048], "dtype": "torch.float32"}]}
    }
    assert (
        SmallBatchAnalyzer().analyze(
            make_run(tmp_path, events=_events(), steps=steps_frame([4.0] * 2), child_info=big)
        )
        == []
    )
    one = {
        "root_inputs": {"Net": [{"name": "args.0", "shape": [1, 2048], "dtype": "torch.float32"}]}
    }
    (f,) = SmallBatchAnalyzer().analyze(
        make_run(tmp_path, events=_events(), steps=steps_frame([4.0] * 2), child_info=one)
    )
    assert f.confidence == 1.0
    assert {e.metric: e.value for e in f.evidence}["input_batch"] == 1


def test_one_call_or_a_gpu_run_is_not_flagged(tmp_path):
    assert (
        SmallBatchAnalyzer().analyze(make_run(tmp_path, events=_events(), steps=steps_frame([4.0])))
        == []
    )
    gpu = make_run(
        tmp_path, events=[*_events(), kernel(200, 2000)], steps=steps_frame([4.0] * 2), gpus=1
    )
    assert SmallBatchAnalyzer().analyze(gpu) == []


@pytest.mark.slow  # one `dsprof run` (~5-30 s), shared per session with test_planted.py
def test_real_run_batch_one_fires():
    (f,) = SmallBatchAnalyzer().analyze(planted_run("small_batch"))
    assert f.severity in ("medium", "high")
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["gemm_rows"] == 1
    assert ev["model_steps"] == 24


@pytest.mark.slow  # one `dsprof run` (~5-30 s), shared per session with test_planted.py
def test_real_run_batch_64_is_clean():
    assert SmallBatchAnalyzer().analyze(planted_run("cpu_fp32_linear")) == []


def test_real_gpu_trace_never_fires():
    assert SmallBatchAnalyzer().analyze(gpu_trace_run()) == []


def test_capped_at_low_under_an_exact_fault(tmp_path):
    # grad mode on in every call with a graph recorded: autograd-in-inference is fixed first
    steps = steps_frame([4.0] * 3, gap_ms=1.0, autograd=True)
    events = _events()
    for i, e in enumerate(e for e in events if e["cat"] == "cpu_op"):
        e["args"]["Sequence number"] = i  # each op created a node
    run = make_run(tmp_path, events=events, steps=steps, child_info={"steps_seen": 3})
    first_pass = AutogradInInferenceAnalyzer().analyze(run)
    assert [x.severity for x in first_pass] != ["low"] and first_pass
    (f,) = SmallBatchAnalyzer().analyze(run, first_pass)
    assert (f.severity, f.impact) == ("low", 0.6)
    assert "autograd-in-inference" in f.title
    by_category = {x.category: x for x in analyze_run(run).findings}
    assert by_category["small-batch"].severity == "low"
