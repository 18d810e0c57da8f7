"""Choosing a backend and launching the Triton kernels: compiled on CUDA, interpreted on the CPU.

Backends, as every kernel function takes them:
    "auto"    Triton for CUDA tensors when triton is installed, no gradient is needed (the
              kernels have no backward) and the process does not interpret; the torch
              reference everywhere else.
    "triton"  always the Triton kernel. CUDA tensors run it compiled; CPU tensors run it under
              Triton's interpreter (what TRITON_INTERPRET=1 selects), slow but exact enough to
              test numerics on a machine without a GPU. Gradients are not tracked.
    "torch"   always the plain torch reference of the same function.

How the interpreter is chosen. Triton decides between compiling and interpreting once per
process: when triton is first imported, TRITON_INTERPRET=1 turns its own building blocks
(tl.sum, tl.zeros, ...) into interpreted functions, and kernels decorated later follow the same
mode, so the mode cannot be switched per call. dsprof's choice:
  - importing dsprof.kernels never imports triton: each kernel module keeps its kernel as a
    plain function whose `tl` and `dev` globals are bound on the first launch;
  - the first backend="triton" call on CPU tensors sets TRITON_INTERPRET=1 if triton is not yet
    imported, and it stays set for the process;
  - if triton was already imported in compiled mode, that call raises KernelUnavailableError
    telling the user to start Python with TRITON_INTERPRET=1;
  - once the process interprets, CUDA tensors forced to "triton" run interpreted too (correct,
    slow) and backend="auto" takes the torch reference.
The kernel tests run the interpreted kernels in child processes for this reason; bench/kernels.py
and the GPU tests run where the variable is unset.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

import torch

from dsprof.core.errors import DsprofError

BACKENDS = ("auto", "triton", "torch")
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# Rows up to this many elements are held in registers as fp32 by one program (one read, one
# write); longer rows are processed in chunks of ROW_CHUNK elements over several passes. LLM
# hidden sizes (4096-16384) stay in one block.
MAX_ROW_BLOCK = 16384
ROW_CHUNK = 4096

# Warps per row: one per 256 elements (8 a thread), as in the Triton layer-norm tutorial
# (num_warps = min(max(BLOCK_SIZE // 256, 1), 8)), with the cap raised to 32 (1024 threads, the
# CUDA maximum) for the large single blocks, as Liger-Kernel's calculate_settings does. Measured
# on the sm_90 cubins (cuobjdump -res-usage, docs/kernels.md): with a cap of 16, fp16 rows of
# 8192-16384 took 59-126 registers a thread, one block per SM; with 32, 31-64; no spills.
ELEMENTS_PER_WARP = 256
MAX_WARPS = 32

Backend = Literal["triton", "torch"]


class KernelUnavailableError(DsprofError):
    """backend="triton" was asked for where the Triton kernel cannot run."""


def triton_available(device: str | torch.device = "cuda") -> tuple[bool, str]:
    """Whether the Triton kernels can run on `device`, and why not.

    Checks without importing triton. On "cpu" the kernels run under the interpreter, which only
    needs triton installed; on "cuda" they also need a CUDA device.
    """
    if importlib.util.find_spec("triton") is None:
        return False, "triton is not installed (pip install triton)"
    device_type = torch.device(device).type
    if device_type == "cpu":
        return True, "triton is installed; CPU tensors run under the Triton interpreter"
    if device_type != "cuda":
        return (
            False,
            f"Triton kernels run on CUDA (or interpreted on the CPU), not on {device_type}",
        )
    if not torch.cuda.is_available():
        return False, "torch sees no CUDA device (torch.cuda.is_available() is False)"
    return True, "triton is installed and a CUDA device is present"


def resolve_backend(backend: str, x: torch.Tensor, *others: torch.Tensor | None) -> Backend:
    """Turn the `backend` argument into the path to take for these tensors."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend == "torch":
        return "torch"
    tensors = [t for t in (x, *others) if t is not None]
    unsupported = sorted({str(t.dtype) for t in tensors if t.dtype not in SUPPORTED_DTYPES})
    if backend == "triton":
        if _AHEAD.get() is not None:
            return "triton"
        if unsupported:
            raise KernelUnavailableError(
                f"the Triton kernels take float32, float16 or bfloat16 tensors, not {unsupported}"
            )
        ok, why = triton_available(x.device)
        if not ok:
            raise KernelUnavailableError(f"backend='triton' cannot run here: {why}")
        if x.device.type != "cuda":
            _import_triton_interpreting()
        return "triton"
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    if x.device.type != "cuda" or unsupported or needs_grad:
        return "torch"
    if not _triton_installed() or _interpreter_chosen():
        return "torch"  # "auto" is the fast path; the interpreter is not
    return "triton"


def check_vector(name: str, param: torch.Tensor | None, n: int, x: torch.Tensor) -> None:
    """Raise ValueError unless `param` is None or a vector of length n on x's device."""
    if param is None:
        return
    if param.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},) to match x's last dim, not {tuple(param.shape)}"
        )
    if param.device != x.device:
        raise ValueError(f"{name} is on {param.device} but x is on {x.device}")


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """x as a (rows, hidden) matrix whose rows are contiguous; a view when x allows it."""
    rows = x.reshape(-1, x.shape[-1])
    return rows if rows.stride(-1) == 1 else rows.contiguous()


def row_launch_params(n: int) -> dict[str, int]:
    """Block size, number of chunks and warps for a kernel that reduces rows of length n."""
    block = next_power_of_2(n) if n <= MAX_ROW_BLOCK else ROW_CHUNK
    warps = min(max(block // ELEMENTS_PER_WARP, 1), MAX_WARPS)
    return {"BLOCK": block, "NUM_CHUNKS": -(-n // block), "num_warps": warps}


def launch(
    kernel: Callable[..., None],
    grid: tuple[int, ...],
    device: torch.device,
    *args: Any,
    **meta: Any,
) -> None:
    """Run a kernel module's plain kernel function over `grid` in this process's Triton mode.

    `meta` holds the kernel's constexpr arguments plus launch options (num_warps), which the
    interpreter ignores. Inside `compile_ahead` the kernel is compiled instead of run.
    """
    jitted = _jit(kernel)
    ahead = _AHEAD.get()
    if ahead is not None:
        ahead.append(_compile(jitted, ahead.target, args, meta))
    elif interpreting():
        jitted[grid](*args, **meta)
    else:
        with torch.cuda.device(device):
            jitted[grid](*args, **meta)


class _AheadOfTime(list[Any]):
    def __init__(self, target: Any) -> None:
        super().__init__()
        self.target = target


_AHEAD: ContextVar[_AheadOfTime | None] = ContextVar("dsprof_kernels_ahead", default=None)


@contextmanager
def compile_ahead(target: Any) -> Iterator[list[Any]]:
    """Compile, instead of run, the kernels that backend="triton" calls launch in this block.

    `target` is a `triton.backends.compiler.GPUTarget` (e.g. GPUTarget("cuda", 90, 32) for an
    H100). This checks the compiled path, down to a cubin, on a machine without a GPU; it needs
    a process in compiled mode (TRITON_INTERPRET unset). Yields the list of compiled kernels;
    the tensors the calls return are left unwritten.
    """
    if interpreting():
        raise KernelUnavailableError(
            "compile_ahead needs triton in compiled mode; this process interprets "
            "(TRITON_INTERPRET=1 was set when triton was imported)"
        )
    compiled = _AheadOfTime(target)
    token = _AHEAD.set(compiled)
    try:
        yield compiled
    finally:
        _AHEAD.reset(token)


def _compile(jitted: Any, target: Any, args: tuple[Any, ...], meta: dict[str, Any]) -> Any:
    import triton
    from triton.compiler import ASTSource
    from triton.runtime.jit import mangle_type

    options = {k: meta[k] for k in meta if k not in jitted.arg_names}
    constexprs = {k: meta[k] for k in meta if k in jitted.arg_names}
    signature = {name: mangle_type(arg) for name, arg in zip(jitted.arg_names, args, strict=False)}
    signature |= {name: "constexpr" for name in constexprs}
    source = ASTSource(fn=jitted, signature=signature, constexprs=constexprs)
    return triton.compile(source, target=target, options=options)


@functools.cache
def interpreting() -> bool:
    """Whether this process's triton runs kernels under its interpreter (imports triton).

    Cached: importing triton fixes the answer for the life of the process.
    """
    import triton.language
    from triton.runtime.interpreter import InterpretedFunction

    # tl.sum is decorated when triton is imported, so its type records the mode chosen then.
    return isinstance(triton.language.sum, InterpretedFunction)


def _interpreter_chosen() -> bool:
    # Without importing triton when the environment already answers.
    if "triton" in sys.modules:
        return interpreting()
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on")


def _import_triton_interpreting() -> None:
    if "triton" not in sys.modules:
        os.environ["TRITON_INTERPRET"] = "1"
    if not interpreting():
        raise KernelUnavailableError(
            "backend='triton' on CPU tensors runs under Triton's interpreter, but triton was "
            "already imported in compiled mode in this process; start Python with "
            "TRITON_INTERPRET=1 set"
        )


@functools.cache
def _jit(kernel: Callable[..., None]) -> Any:
    import triton
    import triton.language

    from dsprof.kernels import device_functions

    # The kernel's module refers to `tl` and `dev`; bind them now that triton is wanted.
    kernel.__globals__["tl"] = triton.language
    kernel.__globals__["dev"] = device_functions
    return triton.jit(kernel)


@functools.cache
def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(n - 1, 0).bit_length()
