"""train-mode-in-inference: exact checks on hand-built runs, then real `dsprof run` runs."""

from __future__ import annotations

import pytest
from cpu_synthetic import make_run, op, profiler_steps, steps_frame
from planted_runs import planted_run

from dsprof.analyzers.train_mode_in_inference import TrainModeInInferenceAnalyzer


def _dropout(ts: float, dur: float, train: bool, *, mask: bool = True) -> list[dict]:
    events = [
        op(
            "aten::dropout",
            ts,
            dur,
            dims=[[8, 64], [], []],
            types=["float", "Scalar", "Scalar"],
            concrete=["", "0.1", str(train)],
        )
    ]
    if mask:
        events.append(op("aten::bernoulli_", ts + 1, dur / 2, dims=[[8, 64], [], []]))
    return events


def _batch_norm(ts: float, dur: float, training: bool) -> dict:
    dims = [[8, 64], [64], [64], [64], [64], [], [], [], []]
    concrete = ["", "", "", "", "", str(training), "0.1", "1e-05", "True"]
    return op(
        "aten::batch_norm",
        ts,
        dur,
        dims=dims,
        types=["float"] * 5 + ["Scalar"] * 4,
        concrete=concrete,
    )


@pytest.mark.parametrize(
    ("events", "severity", "impact"),
    [
        (_dropout(100, 400, True) + _dropout(2100, 400, True), "medium", 0.2),
        (_dropout(100, 10, True), "medium", 0.02),
        ([_batch_norm(100, 300, True)], "high", 0.075),
        (_dropout(100, 400, False, mask=False), "low", 0.0),
    ],
    ids=["dropout", "dropout-floored", "batch-norm", "eval-dropout"],
)
def test_severity_follows_what_the_modules_do(tmp_path, events, severity, impact):
    run = make_run(
        tmp_path,
        events=profiler_steps(2000, 2) + events,
        steps=steps_frame([1.0] * 4, training=3),
        child_info={"training_modules": ["0", "2"]},
    )
    (f,) = TrainModeInInferenceAnalyzer().analyze(run)
    assert (f.category, f.severity, f.impact) == ("train-mode-in-inference", severity, impact)
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["modules_in_training_mode"] == 3
    assert ev["first_modules"] == "0, 2"
    assert f.recipes == ["eval-mode"]


def test_without_arguments_a_dropout_mask_shows_training(tmp_path):
    events = [
        *profiler_steps(2000, 1),
        op("aten::dropout", 100, 200),
        op("aten::bernoulli_", 110, 50),
    ]
    run = make_run(tmp_path, events=events, steps=steps_frame([1.0] * 2, training=1))
    (f,) = TrainModeInInferenceAnalyzer().analyze(run)
    assert (f.severity, f.impact) == ("medium", 0.025)  # the 50 us mask op over a 2 ms window


@pytest.mark.parametrize(
    ("classes", "severity"),
    [({"Dropout": 2, "Linear": 3}, "medium"), ({"BatchNorm2d": 1}, "high"), ({"Linear": 3}, "low")],
    ids=["dropout", "batch-norm", "linear-only"],
)
def test_child_json_classes_decide_without_trace(tmp_path, classes, severity):
    run = make_run(
        tmp_path,
        steps=steps_frame([1.0] * 3, training=3),
        child_info={"training_module_classes": classes},
    )
    (f,) = TrainModeInInferenceAnalyzer().analyze(run)
    assert f.severity == severity


def test_eval_steps_and_training_loops_are_not_flagged(tmp_path):
    evaluated = make_run(tmp_path, steps=steps_frame([1.0] * 3, training=0))
    assert TrainModeInInferenceAnalyzer().analyze(evaluated) == []
    events = [
        *profiler_steps(2000, 1),
        *_dropout(100, 100, True),
        op("aten::native_dropout_backward", 900, 5),
    ]
    training = make_run(tmp_path, events=events, steps=steps_frame([1.0] * 3, training=3))
    assert TrainModeInInferenceAnalyzer().analyze(training) == []


@pytest.mark.slow  # one `dsprof run` (~5-30 s), shared per session with test_planted.py
def test_real_run_dropout_left_in_training_fires():
    (f,) = TrainModeInInferenceAnalyzer().analyze(planted_run("train_mode_in_inference"))
    assert f.severity in ("medium", "high")
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["modules_in_training_mode"] == 8  # Sequential + its 7 children
    assert ev["train_mode_op_calls"] == 10  # 2 Dropout x 5 traced steps


@pytest.mark.slow  # one `dsprof run` (~5-30 s), shared per session with test_planted.py
def test_real_run_after_eval_is_clean():
    assert TrainModeInInferenceAnalyzer().analyze(planted_run("cpu_fp32_linear")) == []
