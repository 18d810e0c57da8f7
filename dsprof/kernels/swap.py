"""Find fusable module patterns in a model and replace them, in place, with the fused modules.

Patterns (the names `patterns` takes):
    layernorm-gelu  an nn.LayerNorm directly followed by a GELU inside an nn.Sequential.
    bias-gelu       an nn.Linear directly followed by a GELU inside an nn.Sequential, and the
                    Hugging Face `*Intermediate` block (dense, then intermediate_act_fn).
    add-layernorm   the Hugging Face `*SelfOutput` / `*Output` block of post-norm encoders
                    (dense, dropout, LayerNorm over hidden_states + input_tensor).
    rms-norm        torch.nn.RMSNorm, LLaMA-style `*RMSNorm` modules (Mistral, Qwen2, ...) and
                    T5LayerNorm (an RMSNorm by another name).

The swap replaces what it can prove is the same function, not what merely has a matching name:
a GELU-looking module is evaluated once on a grid of inputs and kept only if it matches exact or
tanh GELU (so QuickGELU's x*sigmoid(1.702x) is left alone), and an `*RMSNorm` is evaluated once
on random rows and kept only if it matches x * rsqrt(mean(x^2) + eps) * weight (so Gemma's
(1 + weight) form is left alone). Replacements share the original Parameters.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from dsprof.kernels.modules import (
    FusedDenseAddLayerNorm,
    FusedLayerNormGELU,
    FusedLinearGELU,
    FusedRMSNorm,
)
from dsprof.kernels.rms_norm import rms_norm_reference

PATTERNS = ("layernorm-gelu", "bias-gelu", "add-layernorm", "rms-norm")

# A probed GELU must match torch's within this absolute error on the probe grid: fp32 rounding of
# the two formulas' implementations differs by ~1e-7, the tanh form from the exact one by up to
# ~5e-4, QuickGELU from GELU by ~2e-2. The grid reaches past +-10 so that a clipped GELU
# (transformers' ClippedGELUActivation, "gelu_10") is told apart from a plain one.
GELU_PROBE_ATOL = 1e-5
GELU_PROBE_GRID = (-20.0, 20.0, 801)
# A probed RMSNorm must match the reference within this relative error (fp32 probe rows).
RMS_PROBE_RTOL = 1e-4

_FUSED = (FusedLayerNormGELU, FusedLinearGELU, FusedDenseAddLayerNorm, FusedRMSNorm)

Rule = Callable[[nn.Module, str, str], list[str]]


def swap_fused_modules(
    model: nn.Module, patterns: Iterable[str] | None = None, backend: str = "auto"
) -> list[str]:
    """Replace fusable submodules of `model` in place and say what was replaced.

    Returns one "<pattern>: <module path>" per replacement, in the model's module order.

    `patterns` picks among PATTERNS (None: all of them); `backend` is given to every new module.
    The model object itself is never replaced, so references the caller holds stay valid.
    """
    chosen = PATTERNS if patterns is None else tuple(patterns)
    unknown = [p for p in chosen if p not in PATTERNS]
    if unknown:
        raise ValueError(f"unknown fused-kernel patterns {unknown}; known: {list(PATTERNS)}")
    rules = [_RULES[p] for p in PATTERNS if p in chosen]
    position = {name: i for i, (name, _) in enumerate(model.named_modules())}
    swapped: list[str] = []
    with torch.no_grad():
        _swap_below(model, "", rules, backend, swapped)
    # Report in the model's own module order, whatever order the rules ran in.
    return sorted(swapped, key=lambda item: position[item.split(": ", 1)[1]])


def _swap_below(
    parent: nn.Module, prefix: str, rules: list[Rule], backend: str, swapped: list[str]
) -> None:
    for rule in rules:
        swapped.extend(rule(parent, prefix, backend))
    for name, child in parent.named_children():
        if not isinstance(child, _FUSED):
            _swap_below(child, f"{prefix}{name}.", rules, backend, swapped)


def _sequential_pairs(
    parent: nn.Module,
    prefix: str,
    first: type[nn.Module],
    make: Callable[[nn.Module, str], nn.Module | None],
    pattern: str,
) -> list[str]:
    """In an nn.Sequential, replace `first` + GELU by make(first, approximate) + Identity."""
    if not isinstance(parent, nn.Sequential):
        return []
    done = []
    for (this, head), (following, act) in itertools.pairwise(list(parent._modules.items())):
        if not isinstance(head, first) or isinstance(head, _FUSED) or act is None:
            continue
        approximate = _gelu_approximation(act)
        fused = make(head, approximate) if approximate is not None else None
        if fused is None:
            continue
        setattr(parent, this, fused)
        setattr(parent, following, nn.Identity())
        done.append(f"{pattern}: {prefix}{this}")
    return done


def _layernorm_gelu(parent: nn.Module, prefix: str, backend: str) -> list[str]:
    def make(norm: nn.Module, approximate: str) -> nn.Module | None:
        assert isinstance(norm, nn.LayerNorm)
        if len(norm.normalized_shape) != 1:
            return None
        return FusedLayerNormGELU(norm, approximate, backend)

    return _sequential_pairs(parent, prefix, nn.LayerNorm, make, "layernorm-gelu")


def _bias_gelu(parent: nn.Module, prefix: str, backend: str) -> list[str]:
    def make(linear: nn.Module, approximate: str) -> nn.Module:
        assert isinstance(linear, nn.Linear)
        return FusedLinearGELU(linear, approximate, backend)

    done = _sequential_pairs(parent, prefix, nn.Linear, make, "bias-gelu")
    # Hugging Face BertIntermediate and its copies: forward is act(dense(hidden_states)).
    dense = getattr(parent, "dense", None)
    act = getattr(parent, "intermediate_act_fn", None)
    if (
        type(parent).__name__.endswith("Intermediate")
        and isinstance(dense, nn.Linear)
        and not isinstance(dense, _FUSED)
        and isinstance(act, nn.Module)
    ):
        approximate = _gelu_approximation(act)
        if approximate is not None:
            parent.dense = FusedLinearGELU(dense, approximate, backend)
            parent.intermediate_act_fn = nn.Identity()
            done.append(f"bias-gelu: {prefix}dense")
    return done


def _add_layernorm(parent: nn.Module, prefix: str, backend: str) -> list[str]:
    done = []
    for name, child in list(parent.named_children()):
        parts = _dense_add_norm_parts(child)
        if parts is not None:
            setattr(parent, name, FusedDenseAddLayerNorm(*parts, backend=backend))
            done.append(f"add-layernorm: {prefix}{name}")
    return done


def _dense_add_norm_parts(module: nn.Module) -> tuple[nn.Linear, nn.Dropout, nn.LayerNorm] | None:
    # Hugging Face BertSelfOutput / BertOutput and their copies (RoBERTa, ELECTRA, ...):
    # forward(hidden_states, input_tensor) = LayerNorm(dropout(dense(hidden_states)) + input_tensor)
    if isinstance(module, _FUSED) or not type(module).__name__.endswith("Output"):
        return None
    dense = getattr(module, "dense", None)
    dropout = getattr(module, "dropout", None)
    norm = getattr(module, "LayerNorm", None)
    if not (
        isinstance(dense, nn.Linear)
        and isinstance(dropout, nn.Dropout)
        and isinstance(norm, nn.LayerNorm)
        and len(norm.normalized_shape) == 1
    ):
        return None
    if list(inspect.signature(module.forward).parameters) != ["hidden_states", "input_tensor"]:
        return None
    return dense, dropout, norm


def _rms_norm(parent: nn.Module, prefix: str, backend: str) -> list[str]:
    done = []
    for name, child in list(parent.named_children()):
        fused = _as_fused_rms_norm(child, backend)
        if fused is not None:
            setattr(parent, name, fused)
            done.append(f"rms-norm: {prefix}{name}")
    return done


def _as_fused_rms_norm(module: nn.Module, backend: str) -> FusedRMSNorm | None:
    if isinstance(module, _FUSED):
        return None
    rms_norm_class = getattr(nn, "RMSNorm", None)  # torch >= 2.4
    if rms_norm_class is not None and isinstance(module, rms_norm_class):
        if len(module.normalized_shape) != 1:
            return None
        return FusedRMSNorm(module.weight, module.eps, backend)
    weight = getattr(module, "weight", None)
    eps = getattr(module, "variance_epsilon", None)
    if not (
        type(module).__name__.endswith(("RMSNorm", "T5LayerNorm"))
        and isinstance(weight, nn.Parameter)
        and weight.dim() == 1
        and isinstance(eps, float)
    ):
        return None
    probe = torch.randn(4, weight.shape[0], generator=_probe_generator())
    probe = probe.to(device=weight.device, dtype=torch.float32)
    expected = rms_norm_reference(probe, weight.float(), eps)
    try:
        got = module(probe).float()
    except (RuntimeError, TypeError):
        return None
    if not torch.allclose(got, expected, rtol=RMS_PROBE_RTOL, atol=RMS_PROBE_RTOL):
        return None
    return FusedRMSNorm(weight, eps, backend)


def _gelu_approximation(module: nn.Module) -> str | None:
    """ "none" or "tanh" when `module` computes that GELU, else None."""
    if isinstance(module, nn.GELU):
        return module.approximate
    if "gelu" not in type(module).__name__.lower() or any(True for _ in module.parameters()):
        return None
    grid = torch.linspace(*GELU_PROBE_GRID)
    try:
        got = module(grid)
    except (RuntimeError, TypeError):
        return None
    for approximate in ("none", "tanh"):
        if torch.allclose(got, F.gelu(grid, approximate=approximate), rtol=0, atol=GELU_PROBE_ATOL):
            return approximate
    return None


def _probe_generator() -> torch.Generator:
    # A private generator: probing must not advance the global RNG the user's script relies on.
    return torch.Generator().manual_seed(0)


_RULES: dict[str, Rule] = {
    "layernorm-gelu": _layernorm_gelu,
    "bias-gelu": _bias_gelu,
    "add-layernorm": _add_layernorm,
    "rms-norm": _rms_norm,
}
