"""The shipped examples run with plain python and under `dsprof run`, and show their bottleneck."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

EXAMPLES = [
    pytest.param(
        "bert_encoder.py", ["--layers", "2", "--steps", "8", "--seq", "64"], "BertModel", id="bert"
    ),
    pytest.param("cnn_dataloader.py", ["--batches", "10"], "Sequential", id="cnn"),
    pytest.param(
        "gpt2_decode.py",
        ["--layers", "2", "--hidden", "128", "--new-tokens", "10"],
        "GPT2LMHeadModel",
        id="gpt2",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("script", "args", "root_class"), EXAMPLES)
def test_example_runs_plain_and_under_dsprof(tmp_path, script, args, root_class):
    path = ROOT / "examples" / script
    plain = subprocess.run(
        [sys.executable, str(path), *args], capture_output=True, text=True, timeout=300
    )
    assert plain.returncode == 0, plain.stderr
    out = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "dsprof", "run", "--out", str(out), str(path), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    # the example's own last line reaches the terminal unchanged in shape
    assert plain.stdout.split(":")[0] == proc.stdout.split(":")[0]
    (run,) = list(out.iterdir())
    steps = pd.read_parquet(run / "metrics" / "steps.parquet")
    assert set(steps["module"]) == {root_class}
    assert len(steps) >= 8
    m = json.loads((run / "run.json").read_text())
    assert m["status"] == "ok" and m["collectors"]["torch_profiler"]["ok"]
    findings = json.loads((run / "findings.json").read_text())["findings"]
    if script == "cnn_dataloader.py":
        io = [f for f in findings if f["category"] == "io-stall"]
        assert io and io[0]["severity"] in ("medium", "high"), findings
        child = json.loads((run / "child.json").read_text())
        assert child["dataloaders"][0]["num_workers"] == 0
    gpu_categories = {"gpu-idle", "no-tensor-cores", "idle-sm", "memory-fragmentation"}
    assert not gpu_categories & {f["category"] for f in findings}
