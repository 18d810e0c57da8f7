"""Recipes applied at run time on real torch modules through the real StepTracker.

Each test installs a recipe the way a trial child does (dsprof.recipes.trial.install on a
StepTracker whose hooks are live), calls a real module, and checks the change happened on the
script's own object and that global torch state is restored afterwards.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch

from dsprof.recipes import trial
from dsprof.recipes.registry import get_recipe
from dsprof.runner.steps import StepTracker
from dsprof.store.live_steps import STEP_FIELDS


def row_dict(row: tuple) -> dict:
    """A step row as a dict of its fields."""
    return dict(zip(STEP_FIELDS, row, strict=True))


@pytest.fixture
def tracker():
    t = StepTracker()
    records = []
    t.listeners.append(lambda row, out, inp: records.append(SimpleNamespace(**row_dict(row))))
    t.records = records
    yield t
    t.uninstall()
    trial.uninstall()


def _installed(tracker, names, options=None):
    report = trial.install(names, options or {}, tracker)
    tracker.install()
    return report


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Dropout(0.5), torch.nn.Linear(64, 10)
    )


def test_int8_dynamic_quantizes_in_place_and_keeps_the_reference(tracker):
    model = _mlp().eval()
    x = torch.randn(4, 32)
    with torch.no_grad():
        expected = model(x)
    report = _installed(tracker, ["int8-dynamic"])
    held = model  # the script's reference
    with torch.no_grad():
        got = model(x)
    assert held is model
    assert type(model[0]).__module__.startswith("torch.ao.nn.quantized.dynamic")
    assert report["int8-dynamic"]["quantized"] == ["0", "3"]
    assert torch.nn.functional.cosine_similarity(expected, got).min() > 0.99
    assert not torch.equal(expected, got)  # int8 really ran


def test_eval_mode_makes_outputs_deterministic(tracker):
    model = _mlp().train()
    x = torch.randn(4, 32)
    _installed(tracker, ["eval-mode"])
    with torch.no_grad():
        a, b = model(x), model(x)
    assert not model.training
    assert torch.equal(a, b)
    assert tracker.records[0].training_modules == 0


def test_inference_mode_wraps_every_outermost_call(tracker):
    model = _mlp().eval()
    _installed(tracker, ["inference-mode"])
    out = model(torch.randn(2, 32))
    assert out.is_inference() and not out.requires_grad
    assert not torch.is_inference_mode_enabled()  # exited after the call


def test_bf16_autocast_around_calls_only(tracker):
    model = _mlp().eval()
    _installed(tracker, ["bf16"])
    with torch.no_grad():
        out = model(torch.randn(2, 32))
    assert out.dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")


def test_compile_replaces_forward_and_steps_are_still_recorded(tracker):
    import torch._inductor.config as cfg

    freezing = cfg.freezing
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU()).eval()
    x = torch.randn(2, 16)
    with torch.no_grad():
        expected = model(x)
    report = _installed(tracker, ["compile"])
    assert cfg.freezing is True
    with torch.no_grad():
        outs = [model(x) for _ in range(3)]
    assert "forward" in vars(model)  # the instance's forward is the compiled one
    assert len(tracker.records) == 3
    assert report["compile"]["compiled"] == ["Sequential"]
    assert torch.allclose(outs[-1], expected, atol=1e-5)
    trial.uninstall()
    assert cfg.freezing == freezing


def test_threads_and_tf32_restore_torch_state(tracker):
    threads = torch.get_num_threads()
    tf32 = torch.backends.cuda.matmul.allow_tf32
    _installed(tracker, ["threads", "tf32"], {"threads": {"num_threads": 1}})
    assert torch.get_num_threads() == 1
    assert torch.backends.cuda.matmul.allow_tf32 is True
    trial.uninstall()
    assert torch.get_num_threads() == threads
    assert torch.backends.cuda.matmul.allow_tf32 == tf32


def test_dataloader_patch_sets_workers_keeps_batches_and_restores(tracker):
    from torch.utils.data import DataLoader

    init = DataLoader.__init__
    data = torch.arange(40, dtype=torch.float32).reshape(20, 2)
    expected = [b.clone() for b in DataLoader(data, batch_size=4)]
    report = _installed(tracker, ["dataloader"], {"dataloader": {"num_workers": 2}})
    loader = DataLoader(data, batch_size=4)
    explicit = DataLoader(data, batch_size=4, num_workers=1)
    assert (loader.num_workers, loader.persistent_workers, loader.prefetch_factor) == (2, True, 4)
    assert explicit.num_workers == 1  # a choice the script made is left alone
    assert all(torch.equal(a, b) for a, b in zip(expected, loader, strict=True))
    assert report["dataloader"]["patched_loaders"] == 1
    trial.uninstall()
    assert DataLoader.__init__ is init


def test_pinned_memory_patch(tracker):
    from torch.utils.data import DataLoader

    _installed(tracker, ["pinned-memory"])
    assert DataLoader(list(range(4)), batch_size=2).pin_memory is True


def test_alloc_conf_env_keeps_existing_settings():
    recipe = get_recipe("alloc-conf")
    old = os.environ.get("PYTORCH_CUDA_ALLOC_CONF")
    os.environ["PYTORCH_CUDA_ALLOC_CONF"] = "max_split_size_mb:128,expandable_segments:False"
    try:
        env = recipe.env({})
    finally:
        if old is None:
            del os.environ["PYTORCH_CUDA_ALLOC_CONF"]
        else:
            os.environ["PYTORCH_CUDA_ALLOC_CONF"] = old
    assert env == {"PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:128,expandable_segments:True"}


def _bert(attn="eager"):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
    )
    cfg._attn_implementation = attn
    return BertModel(cfg).eval()


def test_sdpa_switches_a_transformers_model(tracker):
    model = _bert("eager")
    ids = torch.randint(0, 1000, (2, 16))
    with torch.no_grad():
        expected = model(input_ids=ids).last_hidden_state
    report = _installed(tracker, ["sdpa"])
    with torch.no_grad():
        got = model(input_ids=ids).last_hidden_state
    assert model.config._attn_implementation == "sdpa"
    assert report["sdpa"]["attention"] == ["eager -> sdpa"]
    assert torch.allclose(expected, got, atol=1e-4)


def test_fused_kernels_swaps_bert_blocks_on_the_torch_reference(tracker):
    model = _bert("sdpa")
    ids = torch.randint(0, 1000, (2, 16))
    with torch.no_grad():
        expected = model(input_ids=ids).last_hidden_state
    report = _installed(tracker, ["fused-kernels"])
    with torch.no_grad():
        got = model(input_ids=ids).last_hidden_state
    assert report["fused-kernels"]["swapped"], "nothing swapped in a BERT encoder"
    assert torch.allclose(expected, got, atol=1e-4)


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("torchao") is not None, reason="torchao is installed"
)
def test_a_recipe_that_fails_to_install_names_itself(tracker):
    with pytest.raises(RuntimeError, match="weight-only-int8"):
        trial.install(["weight-only-int8"], {}, tracker)  # torchao is not installed here


def test_modules_called_inside_a_first_call_hook_are_not_steps(tracker):
    """quantize_dynamic calls observer modules: they must not become steps or captured outputs."""
    model = _mlp().eval()
    _installed(tracker, ["int8-dynamic"])
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 32))
    assert [r.module for r in tracker.records] == ["Sequential"] * 3


def test_a_first_call_hook_that_raises_names_its_recipe(tracker):
    """eval-mode on an object without .eval(): the real AttributeError, reported with the recipe."""

    class Plain(torch.nn.Module):
        def forward(self, x):
            return x * 2

    model = Plain()
    model.eval = None  # a script that shadowed eval: calling it raises TypeError
    report = _installed(tracker, ["eval-mode"])
    with pytest.raises(RuntimeError, match="recipe eval-mode failed at the model's first call"):
        model(torch.ones(1))
    assert report["eval-mode"]["status"] == "failed" and "TypeError" in report["eval-mode"]["error"]
