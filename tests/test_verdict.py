"""Verdict statistics on synthetic step tables and hand-made captured outputs (exact cases)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dsprof.core.fix import Drift
from dsprof.recipes import drift as D
from dsprof.recipes import verdict as V


def _steps(durations_ms):
    d = (np.asarray(durations_ms, dtype=float) * 1e6).astype(np.int64)
    start = np.cumsum(np.concatenate([[0], d[:-1]])) + 1_700_000_000_000_000_000
    return pd.DataFrame(
        {
            "step": np.arange(len(d)),
            "start_ns": start,
            "end_ns": start + d,
            "duration_ns": d,
            "source": "marker",  # iterations as given (model calls lose their last)
        }
    )


def _noisy(ms, n, spread=0.02, seed=0):
    rng = np.random.default_rng(seed)
    return list(ms * (1 + spread * rng.standard_normal(n)))


def test_warmup_and_leading_compile_steps_are_excluded():
    table = _steps([500, 30_000, 9_000, 100, 101, 99, 100, 102, 98, 100])
    d, excluded = V.measured_durations(table, warmup=1)
    assert excluded == 3
    assert len(d) == 7 and d.max() < 110e6


def test_a_slow_step_late_in_the_run_is_kept():
    d, excluded = V.measured_durations(_steps([100, 100, 100, 100, 100, 100, 900, 100]), warmup=1)
    assert excluded == 1 and len(d) == 7


def test_clear_win_has_an_interval_above_one():
    base = np.array(_noisy(100, 30, seed=1)) * 1e6
    fast = np.array(_noisy(50, 30, seed=2)) * 1e6
    s = V.bootstrap_speedup(base, fast)
    assert 1.9 < s.lo <= s.speedup <= s.hi < 2.1


def test_same_distribution_is_no_measurable_change():
    base = np.array(_noisy(100, 30, spread=0.05, seed=3)) * 1e6
    same = np.array(_noisy(100, 30, spread=0.05, seed=4)) * 1e6
    v = V.judge("exact", V.bootstrap_speedup(base, same), Drift(tensors_compared=1, allclose=True))
    assert v.outcome == "no-measurable-change" and not v.accepted
    assert v.ci95[0] < 1 < v.ci95[1]


def test_a_two_percent_gain_inside_the_noise_is_not_a_win():
    base = np.array(_noisy(100, 20, spread=0.03, seed=5)) * 1e6
    slightly = np.array(_noisy(98, 20, spread=0.03, seed=6)) * 1e6
    v = V.judge(
        "exact", V.bootstrap_speedup(base, slightly), Drift(tensors_compared=1, allclose=True)
    )
    assert not v.accepted and v.outcome == "no-measurable-change"


def test_slower_is_named():
    s = V.bootstrap_speedup(np.full(10, 100e6) + np.arange(10), np.full(10, 150e6) + np.arange(10))
    assert V.judge("approximate", s, Drift(tensors_compared=1, cosine=1.0)).outcome == "slower"


def test_too_few_steps_is_insufficient_data():
    s = V.bootstrap_speedup(np.full(3, 100e6), np.full(3, 50e6))
    v = V.judge("exact", s, Drift(tensors_compared=1, allclose=True))
    assert v.outcome == "insufficient-data" and not v.accepted


FAST = V.Speed(speedup=2.0, lo=1.8, hi=2.2, baseline_steps=10, trial_steps=10)


@pytest.mark.parametrize(
    ("risk", "drift", "accepted", "outcome"),
    [
        ("approximate", Drift(tensors_compared=2, cosine=0.9999, top1_agreement=1.0), True, "win"),
        ("approximate", Drift(tensors_compared=2, cosine=0.95), False, "drift"),
        (
            "approximate",
            Drift(tensors_compared=2, cosine=0.999, top1_agreement=0.9),
            False,
            "drift",
        ),
        ("exact", Drift(tensors_compared=2, allclose=True), True, "win"),
        ("exact", Drift(tensors_compared=2, allclose=False, max_abs=0.1), False, "drift"),
        ("deterministic", Drift(tensors_compared=2, deterministic=True), True, "win"),
        ("deterministic", Drift(tensors_compared=2, deterministic=False), False, "drift"),
        ("deterministic", Drift(tensors_compared=2, deterministic=None), False, "drift"),
        ("approximate", Drift(tensors_compared=0), False, "drift"),
    ],
    ids=[
        "approx-ok",
        "approx-cosine",
        "approx-top1",
        "exact-ok",
        "exact-diff",
        "det-ok",
        "det-varies",
        "det-unknown",
        "nothing-compared",
    ],
)
def test_drift_rules(risk, drift, accepted, outcome):
    v = V.judge(risk, FAST, drift)
    assert (v.accepted, v.outcome) == (accepted, outcome)


def test_tolerance_option_changes_the_cosine_bar():
    d = Drift(tensors_compared=1, cosine=0.95)
    assert not V.judge("approximate", FAST, d).accepted
    assert V.judge("approximate", FAST, d, tolerance={"cosine": 0.9}).accepted


def test_eval_mode_is_judged_by_determinism_not_speed():
    flat = V.Speed(speedup=1.0, lo=0.97, hi=1.03, baseline_steps=10, trial_steps=10)
    slow = V.Speed(speedup=0.8, lo=0.75, hi=0.85, baseline_steps=10, trial_steps=10)
    d = Drift(tensors_compared=1, deterministic=True)
    assert V.judge("deterministic", flat, d).accepted
    v = V.judge("deterministic", slow, d)
    assert v.accepted and v.outcome == "slower" and "slower" in v.reason


def _save(dirpath, step, output, inputs=None):
    dirpath.mkdir(parents=True, exist_ok=True)
    torch.save({"output": output, "input": inputs or {}}, dirpath / f"step-{step:04d}.pt")


def test_compare_outputs_metrics(tmp_path):
    a = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # row 2: orthogonal, other argmax
    _save(tmp_path / "base", 0, {"logits": a, "ids": torch.tensor([1, 2])})
    _save(tmp_path / "trial", 0, {"logits": b, "ids": torch.tensor([1, 2])})
    d = D.compare_outputs(tmp_path / "base", tmp_path / "trial")
    assert d.tensors_compared == 2
    assert d.max_abs == pytest.approx(1.0)
    assert d.cosine == pytest.approx(0.5)  # mean of per-row cosines 1 and 0
    assert d.top1_agreement == pytest.approx(0.5)
    assert d.rel_l2 == pytest.approx(1.0)
    assert d.allclose is False


def test_compare_outputs_exact_and_shape_change(tmp_path):
    x = torch.randn(2, 4, 8)
    _save(tmp_path / "b", 0, {"last_hidden_state": x})
    _save(tmp_path / "t", 0, {"last_hidden_state": x + 1e-7})
    d = D.compare_outputs(tmp_path / "b", tmp_path / "t")
    assert d.allclose is True and d.top1_agreement is None  # hidden states are not logits
    _save(tmp_path / "t2", 0, {"last_hidden_state": x[:1]})
    d2 = D.compare_outputs(tmp_path / "b", tmp_path / "t2")
    assert d2.allclose is False and "shape" in d2.note


def test_outputs_deterministic(tmp_path):
    x = torch.ones(2, 3)
    _save(tmp_path / "det", 0, {"0": x * 2}, {"args.0": x})
    _save(tmp_path / "det", 1, {"0": x * 2}, {"args.0": x})
    _save(tmp_path / "rnd", 0, {"0": x * 2}, {"args.0": x})
    _save(tmp_path / "rnd", 1, {"0": x * 3}, {"args.0": x})
    _save(tmp_path / "none", 0, {"0": x}, {"args.0": x})
    _save(tmp_path / "none", 1, {"0": x}, {"args.0": x + 1})
    assert D.outputs_deterministic(tmp_path / "det") is True
    assert D.outputs_deterministic(tmp_path / "rnd") is False
    assert D.outputs_deterministic(tmp_path / "none") is None


def test_model_steps_are_timed_start_to_start_so_time_between_calls_counts():
    table = _steps([10] * 8)
    table["source"] = "module"
    table["start_ns"] = table["start_ns"] + np.arange(8) * 40_000_000  # 40 ms waiting for data
    d, _ = V.measured_durations(table, warmup=0)
    assert len(d) == 7 and np.all(d == 50_000_000)
    table["source"] = "marker"  # marker steps already span the whole iteration
    d, _ = V.measured_durations(table, warmup=0)
    assert len(d) == 8 and np.all(d == 10_000_000)


def test_steps_of_other_top_level_modules_are_left_out():
    table = _steps([100] * 12)
    table["source"] = "module"
    table["module"] = ["MinMaxObserver"] * 6 + ["BertModel"] * 6
    d, _ = V.measured_durations(table, warmup=0, module="BertModel")
    assert len(d) == 5  # 6 calls: 5 iterations start to start
    d_all, _ = V.measured_durations(table, warmup=0, module="NotThere")
    assert len(d_all) == 11
