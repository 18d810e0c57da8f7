"""What the user pays (issue 17): whole-run time with one-time costs, break-even calls,
recompiles counted, the drift metric chosen, class scores told from embeddings, generated
tokens compared, a trial that changes nothing. Exact cases on hand-made step times and
captured outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsprof.core.fix import Drift, WholeRun
from dsprof.recipes import drift as D
from dsprof.recipes import verdict as V

MS = 1_000_000


def _loop(ms, excluded=2, cut=False):
    return V.RunLoop((np.asarray(ms, dtype=np.float64) * MS).astype(np.int64), excluded, cut)


def _steady(ms, n, seed):
    rng = np.random.default_rng(seed)
    return list(ms * (1 + 0.02 * rng.standard_normal(n)))


def test_a_compile_cost_that_thirty_calls_never_pay_back_is_not_a_win():
    # 30 calls of 10 ms; compiled: 9 ms a call after an 11 s first call (the MHA case)
    ref = _loop([12, 11, *_steady(10, 28, 1)])
    trial = _loop([11_000, 9.5, *_steady(9, 28, 2)])
    w = V.whole_run([ref], [trial])
    assert w is not None and w.calls == 30
    assert w.speedup < 0.05 and w.ci95[1] < 0.05  # the compile step is kept, not resampled
    assert 10.5e9 < w.one_time_cost_ns < 11.5e9
    assert 0.9 * MS < w.per_call_saving_ns < 1.1 * MS
    assert 9_000 < w.break_even_calls < 13_000  # ~11 s / ~1 ms
    speed = V.bootstrap_speedup(ref.steady, trial.steady)
    assert speed.lo > 1.03  # per call it is a clear win...
    v = V.judge("approximate", speed, Drift(tensors_compared=1, cosine=1.0), whole=w)
    assert not v.accepted and v.outcome == "not-paid-back"  # ...that the user never gets back
    assert "paid back after" in v.reason and "30 calls" in v.reason


def test_the_same_recipe_with_enough_calls_is_accepted_and_says_when_it_pays():
    ref = _loop([12, 11, *_steady(10, 30_000, 1)])
    trial = _loop([11_000, 9.5, *_steady(9, 30_000, 2)])
    w = V.whole_run([ref], [trial], resamples=200)
    speed = V.bootstrap_speedup(ref.steady, trial.steady, resamples=200)
    v = V.judge("approximate", speed, Drift(tensors_compared=1, cosine=1.0), whole=w)
    assert v.accepted and v.outcome == "win" and w.speedup > 1.03
    assert w.break_even_calls < 30_000


def test_too_few_steps_per_call_but_a_whole_run_measurably_slower_is_said_slower():
    # a few generate() calls, compiled: 5 iterations, 3 of them compiling or recompiling
    ref = _loop([40, 30, 20, 21, 19])
    trial = _loop([9_000, 25, 6_000, 18, 17])
    w = V.whole_run([ref], [trial])
    speed = V.bootstrap_speedup(ref.steady, trial.steady)
    assert speed.trial_steps < V.MIN_STEPS
    v = V.judge("approximate", speed, Drift(tensors_compared=1, cosine=1.0), whole=w)
    assert not v.accepted and v.outcome in ("not-paid-back", "slower")
    assert w.ci95[1] < 1 and "the whole run is slower" in v.reason and "one-time cost" in v.reason
    # without a measurably slower whole run, too few steps stay insufficient data
    v = V.judge("approximate", speed, Drift(tensors_compared=1, cosine=1.0), whole=None)
    assert v.outcome == "insufficient-data"


def test_recompiles_after_the_start_are_counted_and_paid():
    # the second generate() recompiles mid-run: slow steps after the leading ones
    ref = _loop([30, 20, *_steady(10, 40, 3)])
    steady = _steady(5, 40, 4)
    steady[20:23] = [4_000, 3_000, 2_000]
    trial = _loop([8_000, 6, *steady])
    w = V.whole_run([ref], [trial])
    assert w.late_slow_steps == 3 and 8.9e9 < w.late_slow_ns < 9.1e9
    assert w.speedup < 0.1 and w.ci95[1] < 0.1
    # the median per call ignores the recompiles: it alone would call this a x2 win
    speed = V.bootstrap_speedup(ref.steady, trial.steady)
    assert speed.lo > 1.5
    v = V.judge("approximate", speed, Drift(tensors_compared=1, cosine=1.0), whole=w)
    assert v.outcome == "not-paid-back" and "3 slow steps after the start" in v.reason


def test_when_every_step_recompiles_the_compilers_own_time_is_the_floor_of_the_cost():
    # two generate() calls, compiled: every step after the first recompiled (the T5 case,
    # steps recorded at load 5): the steady median is a recompile, and the step times alone
    # put the one-time cost at a fraction of the 36 s the trial spent (at load 5 they read -0.14 s)
    ref = _loop([5.8, 1.1, 1.1, 1.0, 9.4, 1.3])
    trial = _loop([2.1, 13_587, 4_523, 6_930, 4_917, 6_502])
    from_steps = V.whole_run([ref], [trial])
    assert from_steps.one_time_cost_ns < 3e9 < 30e9 < from_steps.trial_ns
    w = V.whole_run([ref], [trial], measured_one_time_ns=30e9)
    assert w.one_time_cost_ns == int(30e9) and w.speedup == from_steps.speedup
    assert "one-time cost 30.00 s" in V.whole_run_text(w)
    # a cost the steps show above the compiler's figure is kept
    w = V.whole_run([ref], [trial], measured_one_time_ns=1e6)
    assert w.one_time_cost_ns == from_steps.one_time_cost_ns


def test_a_run_cut_by_max_steps_is_judged_per_call_and_says_so():
    ref = _loop([12, 11, *_steady(10, 27, 1)], cut=True)
    trial = _loop([11_000, 9.5, *_steady(9, 27, 2)], cut=True)
    w = V.whole_run([ref], [trial])
    assert w.cut_short
    v = V.judge(
        "approximate",
        V.bootstrap_speedup(ref.steady, trial.steady),
        Drift(tensors_compared=1, cosine=1.0),
        whole=w,
    )
    assert v.accepted and "--max-steps" in v.reason


def test_no_per_call_saving_means_never_paid_back():
    w = V.whole_run([_loop([10, 10, *_steady(10, 20, 5)])], [_loop([500, 12, *_steady(12, 20, 6)])])
    assert w.per_call_saving_ns < 0 and w.break_even_calls is None
    assert "never paid back" in V.whole_run_text(w)


def test_references_and_repeats_are_averaged_and_counts_aligned():
    refs = [_loop([10, 10, *_steady(10, 20, s)]) for s in (1, 2)]
    trials = [_loop([10, 10, *_steady(5, 20, s)]) for s in (3, 4)]
    w = V.whole_run(refs, trials)
    assert w.calls == 22 and 1.8 < w.speedup < 2.1
    assert w.one_time_cost_ns < 0.1 * w.baseline_ns


@pytest.mark.parametrize(
    ("name", "shape", "model_class", "scores"),
    [
        ("logits", (2, 8, 2000), "GPT2LMHeadModel", True),
        ("0", (4, 384), None, False),  # a bare [batch, dim] tensor: an embedding as likely
        ("sentence_embedding", (4, 384), "SentenceTransformer", False),
        ("last_hidden_state", (2, 8, 768), "BertForSequenceClassification", False),
        ("0", (4, 10), "ResNetClassifier", True),
        ("start_logits", (2, 32), "BertForQuestionAnswering", True),
        ("pooler_output", (2, 768), "BertModel", False),
        ("0", (4, 1), "Classifier", False),  # one score: no argmax
    ],
    ids=["lm-logits", "bare", "embedding", "hidden", "classifier", "qa", "pooler", "one"],
)
def test_class_scores_are_told_from_embeddings(name, shape, model_class, scores):
    assert D.is_class_scores(name, shape, model_class) is scores


def _save(dirpath, step, output):
    dirpath.mkdir(parents=True, exist_ok=True)
    torch.save({"output": output, "input": {}}, dirpath / f"step-{step:04d}.pt")


def test_an_embedding_is_judged_by_cosine_not_top1(tmp_path):
    # the case: bf16 keeps cosine 0.99999 but flips argmaxes of near-tied dimensions
    base = torch.randn(64, 384, generator=torch.Generator().manual_seed(0))
    trial = base + 2e-2 * torch.randn(64, 384, generator=torch.Generator().manual_seed(1))
    assert (base.argmax(-1) != trial.argmax(-1)).any()
    _save(tmp_path / "b", 0, {"0": base})
    _save(tmp_path / "t", 0, {"0": trial})
    d = D.compare_outputs(tmp_path / "b", tmp_path / "t")
    assert d.top1_agreement is None and d.cosine > 0.999
    ok, why = V.drift_ok("approximate", d, {})
    assert ok and d.metric == "cosine", why


def _generated(dirpath, calls):
    dirpath.mkdir(parents=True, exist_ok=True)
    torch.save({"calls": calls, "total_calls": len(calls)}, dirpath / "generated.pt")


def test_generated_tokens_decide_and_count_only_generated_positions(tmp_path):
    prompt = torch.arange(8).repeat(2, 1)
    new_a = torch.tensor([[5, 6, 7, 8], [1, 2, 3, 4]])
    new_b = torch.tensor([[5, 6, 9, 9], [1, 2, 3, 4]])  # 2 of 8 generated tokens changed
    seq = lambda new: torch.cat([prompt, new], dim=1)  # noqa: E731
    _generated(tmp_path / "b", [{"sequences": seq(new_a), "prompt_len": 8}])
    _generated(tmp_path / "t", [{"sequences": seq(new_b), "prompt_len": 8}])
    logits = torch.eye(4).unsqueeze(0)  # the first calls' logits agree perfectly
    _save(tmp_path / "b", 0, {"logits": logits})
    _save(tmp_path / "t", 0, {"logits": logits})
    d = D.compare_outputs(tmp_path / "b", tmp_path / "t", "GPT2LMHeadModel")
    assert d.token_agreement == pytest.approx(0.75) and d.tokens_compared == 8
    assert d.top1_agreement == 1.0
    ok, why = V.drift_ok("approximate", d, {})
    assert not ok and d.metric == "tokens" and "0.750 of 8 generated tokens" in why
    assert V.drift_ok("approximate", d, {"tokens": 0.7})[0]


def test_a_sequence_that_stops_early_counts_its_missing_tokens(tmp_path):
    _generated(tmp_path / "b", [{"sequences": torch.tensor([[0, 5, 6, 7, 8]]), "prompt_len": 1}])
    _generated(tmp_path / "t", [{"sequences": torch.tensor([[0, 5, 6]]), "prompt_len": 1}])
    assert D.token_agreement(tmp_path / "b", tmp_path / "t") == (0.5, 4)


def test_an_exact_recipe_must_reproduce_the_tokens(tmp_path):
    d = Drift(tensors_compared=1, allclose=True, token_agreement=0.9, tokens_compared=10)
    ok, why = V.drift_ok("exact", d, {})
    assert not ok and "generated tokens differ" in why and d.metric == "allclose"


def test_outputs_that_hold_no_tensor_name_their_types(tmp_path):
    for d in ("b", "t"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "index.json").write_text(
            '[{"step": 0, "file": null, "output_types": ["list[str]"]}]'
        )
    d = D.compare_outputs(tmp_path / "b", tmp_path / "t")
    assert d.tensors_compared == 0 and d.output_types == ["list[str]"]
    ok, why = V.drift_ok("approximate", d, {})
    assert not ok and "the model returned list[str]" in why


def test_whole_run_model_round_trips_through_json():
    w = WholeRun(
        calls=30,
        baseline_ns=300,
        trial_ns=600,
        speedup=0.5,
        per_call_saving_ns=1,
        one_time_cost_ns=330,
        break_even_calls=330,
    )
    assert WholeRun.model_validate_json(w.model_dump_json()) == w


def _run_with(rss, reserved=None):
    from types import SimpleNamespace

    import pandas as pd

    mem = None
    if reserved is not None:
        mem = pd.DataFrame(
            {"step": [0, 1, 0], "device": [0, 0, 1], "reserved_peak_bytes": reserved}
        )
    summary = SimpleNamespace(peak_rss_bytes=rss)
    return SimpleNamespace(cuda_memory=mem, manifest=SimpleNamespace(summary=summary))


def test_memory_change_reads_cuda_reserved_bytes_on_a_gpu_run():
    from dsprof.recipes.session import memory_change

    # alloc-conf on a GPU: the host's resident set hardly moves, the allocator's reserve does
    ref = _run_with(rss=4_000, reserved=[900, 1_000, 500])
    trial = _run_with(rss=4_100, reserved=[700, 700, 450])
    assert memory_change(ref, trial) == (1_150 - 1_500, "cuda-reserved")
    assert memory_change(_run_with(100), _run_with(160)) == (60, "rss")
    assert memory_change(_run_with(None), _run_with(160)) == (None, "")


def test_the_last_call_is_paid_too():
    # six calls, 10 ms apart, each 5 ms; the last one recompiles for 2 s
    import pandas as pd

    starts = [i * 10 * MS for i in range(6)]
    durations = [5 * MS] * 5 + [2_000 * MS]
    steps = pd.DataFrame(
        {"step": range(6), "module": "T5", "start_ns": starts, "duration_ns": durations}
    )
    loop = V.run_loop(steps, warmup=0, module="T5")
    assert len(loop.durations_ns) == 6 and loop.durations_ns[-1] == 2_000 * MS
    assert loop.durations_ns.sum() == 50 * MS + 2_000 * MS
    assert V.run_loop(steps, warmup=0, module="T5", max_steps=6, calls=6).cut_short


def test_a_loader_bound_loop_too_spread_per_call_is_judged_by_its_whole_run():
    # 12 calls reading inline at ~100 ms each, against workers that prefetch: most steps
    # instant, every third one waits on a read (the dataloader trial a CI rehearsal refused:
    # per call x34 [1.02, 135], whole run x2.25 [1.94, 2.45])
    ref = _loop([130, 110, *_steady(100, 10, 3)])
    trial = _loop([150, 2, *[120 if i % 3 == 2 else 1 for i in range(10)]])
    speed = V.bootstrap_speedup(ref.steady, trial.steady)
    assert speed.lo < 1.03 <= speed.hi  # per call: too wide to tell
    w = V.whole_run([ref], [trial])
    assert w is not None and w.ci95[0] > 1.5  # the run the user pays for: clearly shorter
    v = V.judge("exact", speed, Drift(tensors_compared=1, allclose=True), whole=w)
    assert v.accepted and v.outcome == "win", v.reason
    assert "too wide" in v.reason and "whole run clears it" in v.reason
    # a run cut short by --max-steps does not stand for the script: per call decides
    cut = V.whole_run([ref], [_loop(trial.durations_ns / MS, cut=True)])
    v = V.judge("exact", speed, Drift(tensors_compared=1, allclose=True), whole=cut)
    assert not v.accepted and v.outcome == "no-measurable-change", v.reason
