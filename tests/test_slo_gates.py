"""SLO gates outside load: `dsprof run --slo`, `dsprof compare --slo`, `dsprof fix --slo`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dsprof.core.errors import UsageError
from dsprof.load.run_slo import drift_tolerance, parse_run_slos


def dsprof(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    return subprocess.run([sys.executable, "-m", "dsprof", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=180, env=env)  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs of one script: steps of ~1 ms and of ~30 ms (a sleep in forward)."""
    d = tmp_path_factory.mktemp("slo")
    slow = textwrap.dedent(
        """
        import sys, time, torch
        class Slow(torch.nn.Module):
            def forward(self, x):
                time.sleep(float(sys.argv[1]) / 1000)
                return x * 2
        model = Slow().eval()
        for _ in range(12):
            model(torch.randn(2, 16))
        """
    )
    (d / "slow.py").write_text(slow)
    fast = dsprof("run", "--no-trace", "--quiet", "--name", "fast", "slow.py", "1", cwd=d)
    slower = dsprof("run", "--no-trace", "--quiet", "--name", "slower", "slow.py", "30", cwd=d)
    assert fast.returncode == 0 and slower.returncode == 0, fast.stderr + slower.stderr
    found = sorted((d / ".dsprof" / "runs").iterdir())
    return (
        d,
        next(p for p in found if "fast" in p.name),
        next(p for p in found if "slower" in p.name),
    )


def test_run_slo_passes_and_fails_with_exit_3(tmp_path):
    (tmp_path / "slow.py").write_text(textwrap.dedent(
        """
        import time, torch
        class Slow(torch.nn.Module):
            def forward(self, x):
                time.sleep(0.02)
                return x
        m = Slow()
        for _ in range(8):
            m(torch.ones(1))
        """
    ))  # fmt: skip
    ok = dsprof(
        "run", "--no-trace", "-q", "--slo", "p99<2s", "--slo", "rps>1", "slow.py", cwd=tmp_path
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASS" in ok.stdout
    bad = dsprof("run", "--no-trace", "-q", "--slo", "p50<5ms", "slow.py", cwd=tmp_path)
    assert bad.returncode == 3, bad.stdout + bad.stderr
    assert "FAIL" in bad.stdout and "p50<5ms" in bad.stdout


def test_run_slo_spec_errors_come_before_the_script(tmp_path):
    r = dsprof("run", "--slo", "errors<1%", "missing.py", cwd=tmp_path)
    assert r.returncode == 2 and "belong to dsprof load" in r.stderr


def test_compare_slo_gates_on_b(runs):
    d, fast, slower = runs
    ok = dsprof("compare", str(slower), str(fast), "--slo", "p50<20ms", cwd=d)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = dsprof("compare", str(fast), str(slower), "--slo", "p50<20ms", cwd=d)
    assert bad.returncode == 3, bad.stdout + bad.stderr
    assert "SLOs on B: FAIL" in bad.stdout


def test_accuracy_drop_maps_to_the_drift_tolerance():
    assert drift_tolerance(["accuracy-drop<1%"]) == {"cosine": 0.99, "top1": 0.99}
    assert drift_tolerance(["accuracy-drop<0.5%"]) == pytest.approx(
        {"cosine": 0.995, "top1": 0.995}
    )
    with pytest.raises(UsageError, match="accuracy-drop<X% only"):
        drift_tolerance(["p99<1s"])
    with pytest.raises(UsageError, match="belong to dsprof load"):
        parse_run_slos(["goodput>1"])
