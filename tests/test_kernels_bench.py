"""bench/kernels.py: says plainly that it needs CUDA, and runs end to end where there is a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench" / "kernels.py"


def _bench(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"} | env_extra
    return subprocess.run(
        [sys.executable, str(BENCH), *args], env=env, capture_output=True, text=True, timeout=600
    )


def test_bench_without_a_gpu_exits_2_and_says_it_needs_cuda() -> None:
    proc = _bench([], {"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2
    assert "needs a CUDA GPU" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bench_on_gpu_checks_times_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = _bench(["--skip-compile", "--min-run-time", "0.05", "--json", str(out)], {})
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert len(result["kernels"]) == 16
    assert all(row["triton_us"] > 0 and row["eager_us"] > 0 for row in result["kernels"])
    assert result["bert"]["swapped"] == 36  # 12 layers x (2 add-layernorm + 1 bias-gelu)
