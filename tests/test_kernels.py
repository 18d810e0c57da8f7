"""Numerics of the Triton kernels against plain torch compositions, over shapes and dtypes.

The Triton path (backend=backend) runs in a child process: under TRITON_INTERPRET=1 on the CPU
(every CI run), and compiled on CUDA for the tests marked gpu. A child, because Triton fixes
compile-or-interpret once per process when triton is first imported (dsprof.kernels.runtime),
and this keeps the choice away from other tests in the pytest process in both directions. The
child is this file run as a script (`python tests/test_kernels.py cases cpu` with
TRITON_INTERPRET=1 prints every case's result as JSON); the parent asserts one parametrized test
per case.

Expected values are written here independently of dsprof, in float64 from the same (rounded)
inputs, the way a user would compose the unfused ops. Tolerances, per output dtype: the kernels
accumulate in fp32 and round once, so the error is at most half a unit in the last place of the
output dtype (2**-11 relative for fp16, 2**-8 for bf16) plus fp32 rounding of the statistics;
RTOL is 1.5 half-ulps (tight enough to fail a cast that truncates instead of rounding, which
errs by up to a whole ulp); ATOL covers fp32 error on values of order one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

TOLERANCES = {  # dtype name -> (rtol, atol)
    "float32": (1e-5, 1e-5),
    "float16": (1.5 * 2**-11, 1e-5),
    "bfloat16": (1.5 * 2**-8, 1e-5),
}
DTYPES = tuple(TOLERANCES)
SHAPES = {
    "3x5x1000": (3, 5, 1000),  # leading dims; hidden not a multiple of any block
    "7x768": (7, 768),  # BERT-base hidden
    "1000": (1000,),  # one row, no leading dims
    "2x3x17": (2, 3, 17),  # tiny odd rows
    "2x20001": (2, 20001),  # longer than one register block: the chunked path
    "4x1": (4, 1),  # one element per row: zero variance
}
EPS = 1e-5
CHILD_TIMEOUT_S = 300


def _inputs(shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    n = shape[-1]

    def randn(*size: int) -> torch.Tensor:
        return torch.randn(*size, generator=g)

    # Non-zero mean and non-unit spread, so centring and scaling are both exercised.
    return {
        "x": (randn(*shape) * 2 + 0.5).to(device=device, dtype=dtype),
        "residual": randn(*shape).to(device=device, dtype=dtype),
        "weight": (1 + 0.25 * randn(n)).to(device=device, dtype=dtype),
        "bias": (0.25 * randn(n)).to(device=device, dtype=dtype),
    }


def _case_layernorm_gelu(t: dict[str, Any], variant: str, backend: str) -> tuple[Any, Any]:
    from dsprof.kernels import layernorm_gelu

    x, n = t["x"], t["x"].shape[-1]
    w, b = (None, None) if variant == "no-affine" else (t["weight"], t["bias"])
    approximate = "tanh" if variant == "tanh" else "none"
    got = layernorm_gelu(x, w, b, EPS, backend=backend, approximate=approximate)
    wd = None if w is None else w.double()
    bd = None if b is None else b.double()
    want = F.gelu(F.layer_norm(x.double(), (n,), wd, bd, EPS), approximate=approximate)
    return [got], [want]


def _case_bias_gelu(t: dict[str, Any], variant: str, backend: str) -> tuple[Any, Any]:
    from dsprof.kernels import bias_gelu

    x, b = t["x"], (None if variant == "no-bias" else t["bias"])
    approximate = "tanh" if variant == "tanh" else "none"
    got = bias_gelu(x, b, backend=backend, approximate=approximate)
    summed = x.double() if b is None else x.double() + b.double()
    return [got], [F.gelu(summed, approximate=approximate)]


def _case_add_layernorm(t: dict[str, Any], variant: str, backend: str) -> tuple[Any, Any]:
    from dsprof.kernels import add_layernorm

    x, r, w, b = t["x"], t["residual"], t["weight"], t["bias"]
    if variant == "fp32-params":  # autocast-style: half activations, fp32 LayerNorm parameters
        w, b = w.float(), b.float()
    if variant == "fp32-residual":  # an fp32 residual stream: eager's add promotes to fp32
        r = r.float()
    summed = x + r  # the unfused add, in the promoted dtype
    want = F.layer_norm(summed.double(), (x.shape[-1],), w.double(), b.double(), EPS)
    if variant == "with-sum":
        out, s = add_layernorm(x, r, w, b, EPS, backend=backend, return_sum=True)
        return [out, s], [want, summed.double()]
    return [add_layernorm(x, r, w, b, EPS, backend=backend)], [want]


def _case_rms_norm(t: dict[str, Any], variant: str, backend: str) -> tuple[Any, Any]:
    from dsprof.kernels import rms_norm

    x, w = t["x"], (None if variant == "no-weight" else t["weight"])
    got = rms_norm(x, w, 1e-6, backend=backend)
    xd = x.double()
    want = xd * torch.rsqrt(xd.pow(2).mean(dim=-1, keepdim=True) + 1e-6)
    return [got], [want if w is None else want * w.double()]


KERNELS = {
    "layernorm_gelu": (_case_layernorm_gelu, ("affine", "tanh", "no-affine")),
    "bias_gelu": (_case_bias_gelu, ("bias", "tanh", "no-bias")),
    "add_layernorm": (_case_add_layernorm, ("out", "with-sum", "fp32-params", "fp32-residual")),
    "rms_norm": (_case_rms_norm, ("weight", "no-weight")),
}


def _cases() -> dict[str, tuple[str, str, str, str]]:
    """case id -> (kernel, variant, shape name, dtype name)."""
    cases = {}
    for kernel, (_, variants) in KERNELS.items():
        for dtype in DTYPES:
            combos = [(variants[0], shape) for shape in [*SHAPES, "rowstrided"]]
            combos += [(variant, "3x5x1000") for variant in variants[1:]]
            for variant, shape in combos:
                cases[f"{kernel}-{variant}-{shape}-{dtype}"] = (kernel, variant, shape, dtype)
    return cases


CASES = _cases()


def _run_case(case_id: str, device: str, backend: str) -> dict[str, Any]:
    kernel, variant, shape_name, dtype_name = CASES[case_id]
    dtype = getattr(torch, dtype_name)
    seed = sum(case_id.encode())
    if shape_name == "rowstrided":
        # Rows of 1000 taken from rows of 1024: the row stride is not the hidden size.
        wide = _inputs((15, 1024), dtype, device, seed)
        t = {k: (v[..., :1000] if v.dim() == 2 else v[:1000]) for k, v in wide.items()}
    else:
        t = _inputs(SHAPES[shape_name], dtype, device, seed)
    make, _ = KERNELS[kernel]
    got, want = make(t, variant, backend)
    rtol, atol = TOLERANCES[dtype_name]
    excess, max_abs = 0.0, 0.0
    out_dtype = torch.float32 if variant == "fp32-residual" else dtype  # add promotes
    for g, w in zip(got, want, strict=True):
        if g.shape != w.shape or g.dtype != out_dtype:
            return {"error": f"got {g.dtype} {tuple(g.shape)}, want {out_dtype} {tuple(w.shape)}"}
        diff = (g.double().cpu() - w.cpu()).abs()
        max_abs = max(max_abs, diff.max().item())
        excess = max(excess, (diff - (atol + rtol * w.cpu().abs())).max().item())
    return {"error": None, "excess": excess, "max_abs": max_abs}


def _swapped_models(device: str) -> dict[str, Any]:
    """Models whose blocks swap_fused_modules replaces with backend="triton", against eager."""
    from transformers import BertConfig, BertModel
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    from dsprof.kernels import swap_fused_modules

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=120,
        hidden_size=100,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=250,
        max_position_embeddings=64,
    )
    bert = BertModel(config).eval().to(device)
    mlp = torch.nn.Sequential(
        LlamaRMSNorm(1000), torch.nn.Linear(1000, 1000), torch.nn.LayerNorm(1000), torch.nn.GELU()
    ).to(device)
    ids = torch.randint(0, 120, (3, 17), device=device)
    x = torch.randn(3, 5, 1000, device=device)
    results = {}
    for name, model, run in (
        ("bert", bert, lambda: bert(ids).last_hidden_state),
        ("mlp", mlp, lambda: mlp(x)),
    ):
        with torch.inference_mode():
            before = run()
            swapped = swap_fused_modules(model, backend="triton")
            after = run()
        results[f"swap-{name}"] = {
            "error": None,
            "swapped": swapped,
            "max_abs": (after - before).abs().max().item(),
        }
    return results


def _run_cases(device: str) -> dict[str, dict[str, Any]]:
    results = {}
    for case_id in CASES:
        try:
            results[case_id] = _run_case(case_id, device, "triton")
        except Exception as exc:  # reported per case by the parent
            results[case_id] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def _child_results(part: str, device: str, interpret: bool) -> dict[str, dict[str, Any]]:
    """Run `part` ("cases" or "models") of this file in a child on `device`."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), part, device],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def interpreted() -> dict[str, dict[str, Any]]:
    """Every case's result from one child under TRITON_INTERPRET=1 on the CPU."""
    return _child_results("cases", "cpu", interpret=True)


@pytest.fixture(scope="module")
def interpreted_models() -> dict[str, dict[str, Any]]:
    """The swapped models' results from one child under TRITON_INTERPRET=1 on the CPU."""
    return _child_results("models", "cpu", interpret=True)


@pytest.fixture(scope="module")
def compiled_on_gpu() -> dict[str, dict[str, Any]]:
    """Every case's and swapped model's result from one child running compiled on CUDA."""
    cases = _child_results("cases", "cuda", interpret=False)
    return cases | _child_results("models", "cuda", interpret=False)


def _check(result: dict[str, Any]) -> None:
    assert result["error"] is None, result["error"]
    assert result["excess"] <= 0, (
        f"beyond tolerance by {result['excess']:.3g} (max |diff| {result['max_abs']:.3g})"
    )


@pytest.mark.parametrize("case_id", list(CASES))
def test_triton_interpreted_matches_torch(case_id: str, interpreted: dict[str, Any]) -> None:
    _check(interpreted[case_id])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("case_id", list(CASES))
def test_triton_compiled_on_gpu_matches_torch(
    case_id: str, compiled_on_gpu: dict[str, Any]
) -> None:
    _check(compiled_on_gpu[case_id])


# Largest |swapped - eager| accepted for the fp32 models: fp32 rounding through two encoder
# layers (about 1e-6 observed), with margin.
MODEL_ATOL = 1e-4
SWAPPED = {
    "swap-bert": [
        f"{pattern}: encoder.layer.{layer}.{path}"
        for layer in (0, 1)
        for pattern, path in (
            ("add-layernorm", "attention.output"),
            ("bias-gelu", "intermediate.dense"),
            ("add-layernorm", "output"),
        )
    ],
    "swap-mlp": ["rms-norm: 0", "layernorm-gelu: 2"],
}


@pytest.mark.parametrize("model", list(SWAPPED))
def test_swapped_model_on_interpreted_triton_matches_eager(
    model: str, interpreted_models: dict[str, Any]
) -> None:
    assert interpreted_models[model]["swapped"] == SWAPPED[model]
    assert interpreted_models[model]["max_abs"] <= MODEL_ATOL


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("model", list(SWAPPED))
def test_swapped_model_on_gpu_matches_eager(model: str, compiled_on_gpu: dict[str, Any]) -> None:
    assert compiled_on_gpu[model]["swapped"] == SWAPPED[model]
    assert compiled_on_gpu[model]["max_abs"] <= MODEL_ATOL


@pytest.mark.parametrize("case_id", list(CASES))
def test_torch_reference_matches_independent_composition(case_id: str) -> None:
    # The references are what backend="auto" runs off CUDA: they must meet the same bar.
    _check(_run_case(case_id, "cpu", "torch"))


if __name__ == "__main__":
    part, device = sys.argv[1:3]
    print(json.dumps(_run_cases(device) if part == "cases" else _swapped_models(device)))
