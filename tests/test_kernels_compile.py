"""The compiled Triton path, checked without a GPU, and the import-time promises of dsprof.kernels.

Triton can compile a kernel down to a cubin for a named GPU without one being present; this
runs every kernel's compiled variants (dtypes, single-block and chunked rows, constexpr flags)
through the public functions inside runtime.compile_ahead for an H100 (sm_90). It catches what
the interpreter cannot: code the compiler rejects, and argument plumbing that only the compiled
launcher sees, and (with cuobjdump from the triton wheel) register spills. Like test_kernels.py
it runs in a child process, here one where triton compiles.
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

H100 = ("cuda", 90, 32)  # backend, compute capability, warp size
CHILD_TIMEOUT_S = 300


def _compile_all() -> dict[str, Any]:
    from triton.backends.compiler import GPUTarget

    from dsprof.kernels import (
        KernelUnavailableError,
        add_layernorm,
        bias_gelu,
        layernorm_gelu,
        rms_norm,
        runtime,
    )

    # Every dtype at a BERT-like row; the largest register block (worst case for registers) in
    # fp32; the chunked path; then the constexpr flags, which do not depend on the dtype.
    rows = [(dtype, 1000) for dtype in (torch.float16, torch.bfloat16, torch.float32)]
    rows += [(torch.float32, 16384), (torch.bfloat16, 20001)]
    calls = 0
    with runtime.compile_ahead(GPUTarget(*H100)) as compiled:
        for dtype, n in rows:
            x = torch.empty(3, 5, n, dtype=dtype)
            w = torch.empty(n, dtype=dtype)
            layernorm_gelu(x, w, w, backend="triton")
            add_layernorm(x, x, w, w, backend="triton", return_sum=True)
            rms_norm(x, w, backend="triton")
            bias_gelu(x, w, backend="triton")
            calls += 4
        x = torch.empty(3, 5, 1000, dtype=torch.float16)
        w = torch.empty(1000, dtype=torch.float16)
        layernorm_gelu(x, None, None, backend="triton", approximate="tanh")
        bias_gelu(x, None, backend="triton", approximate="tanh")
        add_layernorm(x, x, w.float(), None, backend="triton")
        rms_norm(x, None, backend="triton")
        calls += 4
    try:
        layernorm_gelu(torch.ones(2, 8), None, None, backend="triton")
        cpu_error = None
    except KernelUnavailableError as exc:
        cpu_error = str(exc)
    return {
        "calls": calls,
        "cubin_bytes": [len(kernel.asm["cubin"]) for kernel in compiled],
        "resources": [_resource_usage(kernel) for kernel in compiled],
        "names": sorted({kernel.name for kernel in compiled}),
        "cpu_error": cpu_error,
    }


def _resource_usage(kernel: Any) -> dict[str, int]:
    """Registers and local-memory (spill) bytes per thread of a compiled kernel's cubin."""
    import re
    import tempfile

    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.TemporaryDirectory() as tmp:
        cubin = Path(tmp) / "kernel.cubin"
        cubin.write_bytes(kernel.asm["cubin"])
        out = subprocess.run(
            [str(tool), "-res-usage", str(cubin)], capture_output=True, text=True, check=True
        ).stdout
    found = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", out)
    assert found is not None, out
    return {"registers": int(found[1]), "local_bytes": int(found[4])}


def _child(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"} | env_extra
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S
    )


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cache = tmp_path_factory.mktemp("triton-cache")  # compile from scratch, not from ~/.triton
    proc = _child([str(Path(__file__).resolve())], {"TRITON_CACHE_DIR": str(cache)})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_kernel_variant_compiles_to_a_cubin_for_h100(compiled: dict[str, Any]) -> None:
    assert len(compiled["cubin_bytes"]) == compiled["calls"]
    assert all(size > 0 for size in compiled["cubin_bytes"])
    assert compiled["names"] == [
        "_add_layernorm_kernel",
        "_bias_gelu_kernel",
        "_layernorm_gelu_kernel",
        "_rms_norm_kernel",
    ]


def test_no_kernel_variant_spills_registers(compiled: dict[str, Any]) -> None:
    # Spills to local memory would turn a bandwidth-bound kernel into one that also streams its
    # own registers; the block and warp choices in dsprof.kernels.runtime are meant to avoid it.
    assert [r["local_bytes"] for r in compiled["resources"]] == [0] * compiled["calls"]


def test_cpu_triton_call_after_compiled_import_says_how_to_interpret(
    compiled: dict[str, Any],
) -> None:
    assert compiled["cpu_error"] is not None
    assert "TRITON_INTERPRET=1" in compiled["cpu_error"]


def test_importing_and_running_the_references_never_imports_triton() -> None:
    code = (
        "import sys, torch\n"
        "import dsprof.kernels as k\n"
        "x = torch.randn(2, 3, 10)\n"
        "w = torch.ones(10)\n"
        "k.layernorm_gelu(x, w, w); k.bias_gelu(x, w); k.add_layernorm(x, x, w, w)\n"
        "k.rms_norm(x, w, backend='torch'); k.swap_fused_modules(torch.nn.Sequential())\n"
        "print('triton' in sys.modules)\n"
    )
    proc = _child(["-c", code], {})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip() == "False"


if __name__ == "__main__":
    print(json.dumps(_compile_all()))
