"""Fused Triton kernels against eager PyTorch and torch.compile, at BERT and LLM sizes, on a GPU.

    python bench/kernels.py                       # float16, every kernel, plus BERT-base end to end
    python bench/kernels.py --dtype bfloat16 --json bench-kernels.json
    python bench/kernels.py --skip-compile        # no torch.compile column (saves its compile time)
    python bench/kernels.py --registers 90        # no GPU needed: registers/spills of sm_90 cubins

For each kernel and shape it prints the median time of the unfused eager composition (what the
model runs today), of torch.compile of that composition (compile time excluded, reported
separately), and of the Triton kernel; the speedups; and the Triton kernel's achieved bytes/s as
a share of the device's peak memory bandwidth (from NVML: memory clock x bus width x 2) and of
a measured device-to-device copy. Medians and IQRs come from torch.utils.benchmark; a row whose
IQR exceeds NOISY_IQR of its median is flagged. Every Triton output is checked against eager
before it is timed. Needs a CUDA GPU and a process where TRITON_INTERPRET is unset; exits 2
saying so otherwise.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils import benchmark

TOKENS = 4096  # BERT batch 8 x seq 512, or one 4k-token LLM prefill
DECODE_TOKENS = 64  # an LLM decode step over 64 sequences
SHAPES = {  # kernel -> (label, rows, hidden)
    "layernorm_gelu": [
        ("bert-base", TOKENS, 768),
        ("bert-large", TOKENS, 1024),
        ("hidden 4096", TOKENS, 4096),
        ("hidden 8192", TOKENS, 8192),
    ],
    "bias_gelu": [
        ("bert-base ffn", TOKENS, 3072),
        ("bert-large ffn", TOKENS, 4096),
        ("llama-2-7b ffn", TOKENS, 11008),
        ("llama-3-8b ffn", TOKENS, 14336),
    ],
    "add_layernorm": [
        ("bert-base", TOKENS, 768),
        ("bert-large", TOKENS, 1024),
        ("hidden 4096", TOKENS, 4096),
        ("hidden 8192", TOKENS, 8192),
    ],
    "rms_norm": [
        ("llama-7b prefill", TOKENS, 4096),
        ("llama-70b prefill", TOKENS, 8192),
        ("llama-7b decode", DECODE_TOKENS, 4096),
        ("llama-70b decode", DECODE_TOKENS, 8192),
    ],
}
EPS = 1e-5
NOISY_IQR = 0.10  # torch.utils.benchmark's own warning threshold for IQR / median
CHECK_TOLERANCE = {torch.float16: 1e-2, torch.bfloat16: 5e-2, torch.float32: 1e-4}
COPY_BYTES = 1 << 30  # large enough to stream from HBM, not from L2


@dataclass
class Row:
    """One measured kernel at one shape; times are medians in microseconds."""

    kernel: str
    label: str
    rows: int
    hidden: int
    eager_us: float
    compiled_us: float | None
    triton_us: float
    compile_s: float | None
    bytes_moved: int
    noisy: bool

    @property
    def triton_gbps(self) -> float:
        """Achieved bytes per second of the Triton kernel, in GB/s."""
        return self.bytes_moved / self.triton_us / 1e3


def problems(
    kernel: str, rows: int, n: int, dtype: torch.dtype
) -> tuple[Callable, Callable, tuple, int]:
    """(eager fn, triton fn, args, ideal bytes moved) for one kernel at one shape."""
    from dsprof.kernels import add_layernorm, bias_gelu, layernorm_gelu, rms_norm

    x = torch.randn(rows, n, device="cuda", dtype=dtype)
    w = 1 + 0.1 * torch.randn(n, device="cuda", dtype=dtype)
    b = 0.1 * torch.randn(n, device="cuda", dtype=dtype)
    e = x.element_size()
    if kernel == "layernorm_gelu":
        return (
            lambda x, w, b: F.gelu(F.layer_norm(x, (n,), w, b, EPS)),
            lambda x, w, b: layernorm_gelu(x, w, b, EPS, backend="triton"),
            (x, w, b),
            2 * rows * n * e + 2 * n * e,
        )
    if kernel == "bias_gelu":
        return (
            lambda x, b: F.gelu(x + b),
            lambda x, b: bias_gelu(x, b, backend="triton"),
            (x, b),
            2 * rows * n * e + n * e,
        )
    if kernel == "add_layernorm":
        r = torch.randn_like(x)
        return (
            lambda x, r, w, b: F.layer_norm(x + r, (n,), w, b, EPS),
            lambda x, r, w, b: add_layernorm(x, r, w, b, EPS, backend="triton"),
            (x, r, w, b),
            3 * rows * n * e + 2 * n * e,
        )
    if kernel == "rms_norm":

        def llama_rms_norm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            # LlamaRMSNorm.forward, as transformers writes it
            x32 = x.to(torch.float32)
            x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + EPS)
            return w * x32.to(x.dtype)

        return (
            llama_rms_norm,
            lambda x, w: rms_norm(x, w, EPS, backend="triton"),
            (x, w),
            2 * rows * n * e + n * e,
        )
    raise ValueError(kernel)


def median_us(fn: Callable, args: tuple, min_run_time: float) -> tuple[float, float]:
    """(median, IQR) in microseconds of fn(*args) on the GPU."""
    timer = benchmark.Timer(stmt="fn(*args)", globals={"fn": fn, "args": args})
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return m.median * 1e6, m.iqr * 1e6


def measure(kernel: str, label: str, rows: int, n: int, dtype: torch.dtype, opts: Any) -> Row:
    """Check the Triton output against eager, then time eager, compiled and Triton."""
    eager, fused, args, nbytes = problems(kernel, rows, n, dtype)
    with torch.inference_mode():
        want, got = eager(*args), fused(*args)
        err = (got.float() - want.float()).abs().max().item()
        if err > CHECK_TOLERANCE[dtype] * max(1.0, want.float().abs().max().item()):
            raise SystemExit(f"{kernel} {label}: Triton differs from eager by {err:.3g}")
        eager_us, eager_iqr = median_us(eager, args, opts.min_run_time)
        triton_us, triton_iqr = median_us(fused, args, opts.min_run_time)
        compiled_us = compile_s = None
        if not opts.skip_compile:
            compiled = torch.compile(eager, dynamic=False, fullgraph=True)
            start = time.perf_counter()
            compiled(*args)
            torch.cuda.synchronize()
            compile_s = time.perf_counter() - start
            compiled_us, _ = median_us(compiled, args, opts.min_run_time)
    noisy = eager_iqr > NOISY_IQR * eager_us or triton_iqr > NOISY_IQR * triton_us
    return Row(kernel, label, rows, n, eager_us, compiled_us, triton_us, compile_s, nbytes, noisy)


def peak_bandwidth_gbps() -> float | None:
    """Theoretical memory bandwidth of GPU 0 from NVML, or None when NVML cannot say."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
            mem_mhz = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM)
            bus_bits = pynvml.nvmlDeviceGetMemoryBusWidth(handle)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # NVML missing or the query unsupported: report "n/a", not a guess
        return None
    return mem_mhz * 1e6 * 2 * bus_bits / 8 / 1e9  # double data rate


def copy_bandwidth_gbps(min_run_time: float) -> float:
    """Measured device-to-device copy bandwidth (read + write) in GB/s."""
    src = torch.empty(COPY_BYTES, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    us, _ = median_us(dst.copy_, (src,), min_run_time)
    return 2 * COPY_BYTES / us / 1e3


def bert_end_to_end(dtype: torch.dtype, opts: Any) -> dict[str, Any]:
    """BERT-base (random weights), batch 8 x seq 128: eager vs swapped to the fused modules."""
    from transformers import BertConfig, BertModel

    from dsprof.kernels import swap_fused_modules

    torch.manual_seed(0)
    eager = BertModel(BertConfig()).eval().to("cuda", dtype)
    fused = copy.deepcopy(eager)
    swapped = swap_fused_modules(fused, backend="triton")
    ids = torch.randint(0, 30000, (8, 128), device="cuda")
    with torch.inference_mode():
        drift = (fused(ids).last_hidden_state - eager(ids).last_hidden_state).abs().max().item()
        eager_us, _ = median_us(lambda: eager(ids), (), opts.min_run_time)
        fused_us, _ = median_us(lambda: fused(ids), (), opts.min_run_time)
    return {
        "model": "bert-base b8 s128",
        "swapped": len(swapped),
        "eager_ms": eager_us / 1e3,
        "fused_ms": fused_us / 1e3,
        "speedup": eager_us / fused_us,
        "max_abs_drift": drift,
    }


def register_usage(dtype: torch.dtype, capability: int) -> None:
    """Compile every benchmarked kernel for sm_<capability> without a GPU; print its resources."""
    import re
    import subprocess
    import tempfile
    from pathlib import Path

    import triton
    from triton.backends.compiler import GPUTarget

    from dsprof.kernels import add_layernorm, bias_gelu, layernorm_gelu, rms_norm, runtime

    kernels = {
        "layernorm_gelu": lambda x, w: layernorm_gelu(x, w, w, backend="triton"),
        "bias_gelu": lambda x, w: bias_gelu(x, w, backend="triton"),
        "add_layernorm": lambda x, w: add_layernorm(x, x, w, w, backend="triton"),
        "rms_norm": lambda x, w: rms_norm(x, w, backend="triton"),
    }
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    print(f"sm_{capability} cubins, {dtype}: registers and spill (local) bytes per thread")
    print(f"{'kernel':<15}{'shape':<19}{'hidden':>7}{'warps':>6}{'regs':>6}{'spill':>6}")
    for kernel, shapes in SHAPES.items():
        for label, _, n in shapes:
            x = torch.empty(2, n, dtype=dtype)
            with runtime.compile_ahead(GPUTarget("cuda", capability, 32)) as done:
                kernels[kernel](x, torch.empty(n, dtype=dtype))
            with tempfile.TemporaryDirectory() as tmp:
                cubin = Path(tmp) / "k.cubin"
                cubin.write_bytes(done[0].asm["cubin"])
                out = subprocess.run(
                    [str(tool), "-res-usage", str(cubin)], capture_output=True, text=True
                ).stdout
            found = re.search(r"REG:(\d+) .*LOCAL:(\d+)", out)
            regs, spill = (found[1], found[2]) if found else ("?", "?")
            warps = done[0].metadata.num_warps
            print(f"{kernel:<15}{label:<19}{n:>7}{warps:>6}{regs:>6}{spill:>6}")


def print_table(rows: list[Row], peak: float | None, copy_gbps: float) -> None:
    """The per-kernel table: times, speedups, bandwidth shares."""
    head = (
        f"{'kernel':<15}{'shape':<19}{'rows x hidden':>14}{'eager':>9}{'compile':>9}{'triton':>9}"
    )
    head += f"{'x eager':>9}{'x comp':>8}{'GB/s':>7}{'%peak':>7}{'%copy':>7}"
    print(head + "   (times: median us)")
    for r in rows:
        comp = f"{r.compiled_us:9.1f}" if r.compiled_us is not None else f"{'-':>9}"
        vs_comp = (
            f"{r.compiled_us / r.triton_us:8.2f}" if r.compiled_us is not None else f"{'-':>8}"
        )
        share = f"{100 * r.triton_gbps / peak:7.0f}" if peak else f"{'n/a':>7}"
        line = f"{r.kernel:<15}{r.label:<19}{f'{r.rows}x{r.hidden}':>14}{r.eager_us:9.1f}{comp}"
        line += f"{r.triton_us:9.1f}{r.eager_us / r.triton_us:9.2f}{vs_comp}{r.triton_gbps:7.0f}"
        line += f"{share}{100 * r.triton_gbps / copy_gbps:7.0f}"
        print(line + ("  noisy (IQR > 10% of median)" if r.noisy else ""))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 2 when there is no CUDA GPU to run it on."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--min-run-time", type=float, default=0.5, help="seconds per timing")
    parser.add_argument("--skip-compile", action="store_true", help="leave out torch.compile")
    parser.add_argument("--skip-model", action="store_true", help="leave out BERT end to end")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--registers",
        type=int,
        metavar="SM",
        help="no timing: compile for compute capability SM (e.g. 90) without a GPU and print "
        "registers and spills per kernel",
    )
    opts = parser.parse_args(argv)
    if opts.registers is not None:
        register_usage(getattr(torch, opts.dtype), opts.registers)
        return 0
    if not torch.cuda.is_available():
        print(
            "bench/kernels.py needs a CUDA GPU: torch.cuda.is_available() is False here. "
            "Run it on a machine with an NVIDIA GPU (the kernels' CPU numerics are tested "
            "under TRITON_INTERPRET=1 by tests/test_kernels.py).",
            file=sys.stderr,
        )
        return 2
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print(
            "bench/kernels.py: unset TRITON_INTERPRET; interpreted timings mean nothing",
            file=sys.stderr,
        )
        return 2
    dtype = getattr(torch, opts.dtype)
    import triton

    peak = peak_bandwidth_gbps()
    copy_gbps = copy_bandwidth_gbps(opts.min_run_time)
    print(
        f"{torch.cuda.get_device_name()} | torch {torch.__version__} | triton {triton.__version__}"
        f" | {opts.dtype} | peak {f'{peak:.0f} GB/s' if peak else 'n/a'} (NVML)"
        f" | copy {copy_gbps:.0f} GB/s"
    )
    rows = [
        measure(kernel, label, m, n, dtype, opts)
        for kernel, shapes in SHAPES.items()
        for label, m, n in shapes
    ]
    print_table(rows, peak, copy_gbps)
    model = None if opts.skip_model else bert_end_to_end(dtype, opts)
    if model is not None:
        print(
            f"{model['model']}: eager {model['eager_ms']:.2f} ms, {model['swapped']} modules "
            f"swapped {model['fused_ms']:.2f} ms, x{model['speedup']:.2f}, "
            f"max |drift| {model['max_abs_drift']:.3g}"
        )
    if opts.json:
        result = {
            "device": torch.cuda.get_device_name(),
            "torch": torch.__version__,
            "triton": triton.__version__,
            "dtype": opts.dtype,
            "peak_gbps": peak,
            "copy_gbps": copy_gbps,
            "kernels": [asdict(r) | {"triton_gbps": r.triton_gbps} for r in rows],
            "bert": model,
        }
        with open(opts.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
