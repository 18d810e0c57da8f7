"""swap_fused_modules on real models, the drop-in modules, and the backend argument.

Everything here runs in-process on the torch path (backend="auto" on CPU tensors), so it never
imports triton; the same modules running the Triton kernels are checked by test_kernels.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel
from transformers.activations import ACT2FN
from transformers.models.llama.modeling_llama import LlamaRMSNorm
from transformers.models.t5.modeling_t5 import T5LayerNorm

from dsprof.kernels import (
    PATTERNS,
    FusedDenseAddLayerNorm,
    FusedLayerNormGELU,
    FusedLinearGELU,
    FusedRMSNorm,
    KernelUnavailableError,
    add_layernorm,
    bias_gelu,
    layernorm_gelu,
    rms_norm,
    swap_fused_modules,
)


def tiny_bert(seed: int = 0) -> BertModel:
    """Two-layer BERT with odd sizes and random weights (no download), in eval mode."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=120,
        hidden_size=100,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=250,
        max_position_embeddings=64,
    )
    return BertModel(config).eval()


def test_bert_swap_names_every_fused_block_and_keeps_outputs_and_state_dict() -> None:
    model = tiny_bert()
    ids = torch.randint(0, 120, (3, 17), generator=torch.Generator().manual_seed(1))
    params_before = {name: id(p) for name, p in model.named_parameters()}
    with torch.inference_mode():
        before = model(ids).last_hidden_state

    swapped = swap_fused_modules(model)

    assert swapped == [
        item
        for layer in (0, 1)
        for item in (
            f"add-layernorm: encoder.layer.{layer}.attention.output",
            f"bias-gelu: encoder.layer.{layer}.intermediate.dense",
            f"add-layernorm: encoder.layer.{layer}.output",
        )
    ]
    layer = model.encoder.layer[0]
    assert isinstance(layer.attention.output, FusedDenseAddLayerNorm)
    assert isinstance(layer.output, FusedDenseAddLayerNorm)
    assert isinstance(layer.intermediate.dense, FusedLinearGELU)
    assert isinstance(layer.intermediate.intermediate_act_fn, nn.Identity)
    # Same Parameter objects under the same names: checkpoints and tied weights still fit.
    assert {name: id(p) for name, p in model.named_parameters()} == params_before
    with torch.inference_mode():
        after = model(ids).last_hidden_state
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_swapped_bert_under_autocast_keeps_eager_dtypes() -> None:
    # The fp16/bf16 recipes stack with this one through autocast: eager LayerNorm returns fp32
    # there, and add_layernorm must too (BERT's residual stream is fp32 under autocast).
    eager = tiny_bert()
    fused = tiny_bert()
    swap_fused_modules(fused)
    ids = torch.randint(0, 120, (3, 17), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = eager(ids).last_hidden_state
        got = fused(ids).last_hidden_state
    assert got.dtype == want.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_swapping_twice_finds_nothing_new() -> None:
    model = tiny_bert()
    assert swap_fused_modules(model)
    assert swap_fused_modules(model) == []


def test_patterns_pick_rules_and_unknown_pattern_is_refused() -> None:
    model = tiny_bert()
    assert [s.split(":")[0] for s in swap_fused_modules(model, ["bias-gelu"])] == ["bias-gelu"] * 2
    assert isinstance(model.encoder.layer[0].output, nn.Module)
    assert not isinstance(model.encoder.layer[0].output, FusedDenseAddLayerNorm)
    with pytest.raises(ValueError, match="unknown fused-kernel patterns"):
        swap_fused_modules(model, ["layernorm-gelu", "flash-attention"])
    assert set(PATTERNS) == {"layernorm-gelu", "bias-gelu", "add-layernorm", "rms-norm"}


@pytest.mark.parametrize(
    ("act", "approximate"),
    [
        (nn.GELU(), "none"),
        (nn.GELU(approximate="tanh"), "tanh"),
        (ACT2FN["gelu"], "none"),  # transformers GELUActivation
        (ACT2FN["gelu_new"], "tanh"),  # GPT-2's NewGELUActivation
        (ACT2FN["gelu_fast"], "tanh"),
    ],
    ids=["nn-gelu", "nn-gelu-tanh", "hf-gelu", "hf-gelu-new", "hf-gelu-fast"],
)
def test_sequential_norm_and_linear_followed_by_gelu_are_fused(
    act: nn.Module, approximate: str
) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 1000), nn.LayerNorm(1000), act, nn.Linear(1000, 50), act)
    x = torch.randn(3, 5, 30)
    with torch.no_grad():
        before = model(x)
        swapped = swap_fused_modules(model)
        after = model(x)
    assert swapped == ["layernorm-gelu: 1", "bias-gelu: 3"]
    assert isinstance(model[1], FusedLayerNormGELU) and model[1].approximate == approximate
    assert isinstance(model[3], FusedLinearGELU) and model[3].approximate == approximate
    assert isinstance(model[2], nn.Identity) and isinstance(model[4], nn.Identity)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "act",
    [ACT2FN["quick_gelu"], ACT2FN["gelu_10"], nn.ReLU()],
    ids=["quick-gelu", "clipped-gelu", "relu"],
)
def test_activations_that_are_not_plain_gelu_are_left_alone(act: nn.Module) -> None:
    model = nn.Sequential(nn.LayerNorm(64), act, nn.Linear(64, 64), act)
    assert swap_fused_modules(model) == []
    assert model[1] is act and model[3] is act


class OffsetRMSNorm(nn.Module):
    """Looks like LlamaRMSNorm (name, weight, variance_epsilon) but scales by (1 + weight)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n))
        self.variance_epsilon = 1e-6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return (y * (1 + self.weight.float())).to(x.dtype)


def test_rms_norms_are_swapped_only_when_they_compute_rms_norm() -> None:
    torch.manual_seed(0)
    llama = LlamaRMSNorm(1000, eps=1e-5)
    nn.init.normal_(llama.weight, 1.0, 0.2)
    model = nn.ModuleDict(
        {
            "llama": llama,
            "torch": nn.RMSNorm(1000),
            "t5": T5LayerNorm(1000),
            "offset": OffsetRMSNorm(1000),
        }
    )
    x = torch.randn(3, 5, 1000)
    with torch.no_grad():
        before = {name: m(x) for name, m in model.items()}
        rng = torch.get_rng_state()
        swapped = swap_fused_modules(model)
        assert torch.equal(torch.get_rng_state(), rng), "probing must not consume the global RNG"
        after = {name: m(x) for name, m in model.items()}
    assert swapped == ["rms-norm: llama", "rms-norm: torch", "rms-norm: t5"]
    assert isinstance(model["llama"], FusedRMSNorm) and model["llama"].weight is llama.weight
    assert model["llama"].eps == 1e-5
    assert isinstance(model["offset"], OffsetRMSNorm)
    for name in before:
        torch.testing.assert_close(after[name], before[name], rtol=1e-5, atol=1e-5)


def test_fused_rms_norm_returns_the_promoted_dtype_like_llama() -> None:
    llama = LlamaRMSNorm(64)  # fp32 weight
    fused = FusedRMSNorm(llama.weight, llama.variance_epsilon)
    x = torch.randn(4, 64).to(torch.bfloat16)
    with torch.no_grad():
        assert fused(x).dtype == llama(x).dtype == torch.float32
        torch.testing.assert_close(fused(x), llama(x), rtol=2**-7, atol=1e-5)


def test_auto_backend_keeps_autograd_working() -> None:
    torch.manual_seed(0)
    norm = nn.LayerNorm(40)
    fused = FusedLayerNormGELU(norm)
    x = torch.randn(2, 40, requires_grad=True)
    fused(x).sum().backward()
    assert x.grad is not None and norm.weight.grad is not None
    expected = torch.autograd.grad(F.gelu(norm(x)).sum(), x)[0]
    torch.testing.assert_close(x.grad, expected)


def test_bad_arguments_are_refused_with_a_sentence() -> None:
    x = torch.randn(2, 3, 10)
    with pytest.raises(ValueError, match=r"weight must have shape \(10,\)"):
        layernorm_gelu(x, torch.ones(9), None)
    with pytest.raises(ValueError, match="backend must be one of"):
        rms_norm(x, None, backend="cuda")
    with pytest.raises(ValueError, match="residual has shape"):
        add_layernorm(x, x[:, :2], None, None)
    with pytest.raises(ValueError, match="approximate must be one of"):
        bias_gelu(x, None, approximate="fast")
    with pytest.raises(KernelUnavailableError, match="float64"):
        rms_norm(x.double(), None, backend="triton")


def test_auto_backend_serves_dtypes_the_kernels_do_not_take() -> None:
    x = torch.randn(2, 10, dtype=torch.float64)
    expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(rms_norm(x, None), expected)


def test_empty_input_gives_empty_output() -> None:
    x = torch.empty(0, 1000)
    assert layernorm_gelu(x, None, None).shape == (0, 1000)
    out, summed = add_layernorm(x, x, None, None, return_sum=True)
    assert out.shape == summed.shape == (0, 1000)
