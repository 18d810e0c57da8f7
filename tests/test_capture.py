"""Output capture within a byte budget: whole tensors, sampled rows, and drift on what is kept."""

from __future__ import annotations

import json

import pytest
import torch

from dsprof.recipes.drift import compare_outputs
from dsprof.runner.capture import (
    CaptureBudget,
    OutputCapture,
    aligned_rows,
    keep_tensor,
    keep_within,
    row_stride,
)
from dsprof.store.layout import RunPaths


def test_small_outputs_are_kept_whole():
    t = torch.randn(4, 10)
    kept = keep_within({"logits": t, "ids": torch.arange(4)}, 10_000)
    assert torch.equal(kept["logits"].tensor, t) and kept["logits"].meta is None
    assert kept["ids"].meta is None


@pytest.mark.parametrize(
    ("rows", "keep", "stride"), [(100, 100, 1), (100, 50, 2), (100, 49, 4), (16384, 3, 8192)]
)
def test_row_stride_is_the_smallest_power_of_two_that_fits(rows: int, keep: int, stride: int):
    assert row_stride(rows, keep) == stride
    assert -(-rows // stride) <= keep


def test_a_tensor_over_its_share_keeps_strided_rows_and_whole_statistics():
    logits = torch.randn(8, 64, 1000)  # 512 rows of a 1000-wide vocabulary, 2 MB
    kept = keep_tensor(logits, 100_000)
    assert kept is not None and kept.meta is not None
    stride = kept.meta["row_stride"]
    assert kept.nbytes <= 100_000 and kept.tensor.shape[1] == 1000
    assert torch.equal(kept.tensor, logits.reshape(-1, 1000)[::stride])
    assert kept.meta["shape"] == [8, 64, 1000] and kept.meta["rows_of"] == 512
    stats = kept.meta["stats"]
    assert stats["mean"] == pytest.approx(float(logits.double().mean()), abs=1e-9)
    assert stats["max"] == pytest.approx(float(logits.max()))


def test_rows_kept_by_two_budgets_nest_and_compare_exactly():
    base = torch.randn(512, 300)
    trial = base.clone()
    trial[::64] += 1.0  # drift on some rows both keep
    a = keep_tensor(base, 300 * 4 * 64)  # stride 8
    b = keep_tensor(trial.half(), 300 * 2 * 16)  # other dtype, stride 32
    assert a is not None and b is not None and a.meta and b.meta
    pair = aligned_rows(a.tensor, a.meta, b.tensor, b.meta)
    assert pair is not None
    ra, rb = pair
    assert ra.shape == rb.shape == (16, 300)
    assert torch.equal(ra, base[::32]) and torch.allclose(rb.float(), trial[::32], atol=1e-2)


def test_capture_keeps_the_models_steps_within_the_run_budget(tmp_path):
    paths = RunPaths(tmp_path)
    paths.make_dirs()
    budget = CaptureBudget(step_bytes=64 * 1024, run_bytes=150 * 1024)
    cap = OutputCapture(paths, steps=3, budget=budget)
    x = torch.randn(4, 100)
    for step in range(3):
        cap.save(0, step, torch.randn(16, 10), ((x,), {}))  # a preprocessing root
        cap.save(1, step, {"logits": torch.randn(4, 32, 500)}, ((x,), {}))
    info = cap.finish(model_root=1)
    index = json.loads(paths.outputs_index.read_text())
    assert [e["step"] for e in index] == info["steps"]
    assert not paths.output_roots_dir.exists()
    assert set(paths.output_steps()) == set(info["steps"])
    assert info["bytes"] <= budget.run_bytes
    assert all(e["bytes"] <= budget.step_bytes for e in index)
    assert info["sampled"] and info["sampled"][0]["name"] == "logits"
    saved = torch.load(paths.output_step(0), weights_only=True)
    assert saved["sampled"]["output"]["logits"]["shape"] == [4, 32, 500]


def test_drift_is_measured_on_the_kept_rows(tmp_path):
    torch.manual_seed(0)
    logits = torch.randn(2, 256, 700)
    dirs = []
    for name, out, step_bytes in (
        ("base", logits, 200_000),
        ("same", logits.clone(), 90_000),
        ("off", -logits, 200_000),
    ):
        paths = RunPaths(tmp_path / name)
        paths.make_dirs()
        cap = OutputCapture(paths, steps=1, budget=CaptureBudget(step_bytes, 10**7))
        cap.save(0, 0, {"logits": out})
        cap.finish(model_root=0)
        dirs.append(paths.outputs_dir)
    same = compare_outputs(dirs[0], dirs[1])
    assert same.cosine == pytest.approx(1.0) and same.top1_agreement == 1.0
    off = compare_outputs(dirs[0], dirs[2])
    assert off.cosine == pytest.approx(-1.0) and off.top1_agreement == 0.0
