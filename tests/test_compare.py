"""`dsprof compare A B --fail-above PCT`: deltas and the CI gate's exit status."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_synthetic import RUN_ID, make_run

from dsprof.cli.main import main
from dsprof.core.errors import UsageError
from dsprof.report.compare import compare_refs, parse_percent

SLOWER = "20260101-120000-slower-abcd"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_run(root)  # iteration p50 11.4 ms (model 10.4 ms, 1 ms between calls)
    make_run(root, SLOWER, base_ms=11.0, gpu=False, findings=False)  # 12.44 ms: +9.1 %
    return root


def test_deltas(runs: Path) -> None:
    cmp = compare_refs(runs / RUN_ID, runs / SLOWER)
    assert cmp.p50_regression_pct() == pytest.approx(100 * (12.44 / 11.4 - 1))
    p50, throughput = cmp.metric("p50"), cmp.metric("throughput")
    assert p50 is not None and p50.verdict == "worse"
    assert throughput is not None and throughput.verdict == "worse"
    gpu = cmp.metric("gpu_util")
    assert gpu is not None and gpu.b is None and gpu.change_pct is None  # not collected in B
    assert cmp.only_a == ["gpu-idle", "small-batch"] and cmp.only_b == []


@pytest.mark.parametrize(
    ("a", "b", "gate", "code"),
    [
        (RUN_ID, SLOWER, "5%", 1),
        (RUN_ID, SLOWER, "12", 0),
        (SLOWER, RUN_ID, "0%", 0),  # B faster than A passes any gate
        (RUN_ID, SLOWER, None, 0),
    ],
    ids=["regressed", "within-gate", "faster", "no-gate"],
)
def test_gate_exit_status(
    runs: Path, a: str, b: str, gate: str | None, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["compare", a, b, "--runs-dir", str(runs)] + (["--fail-above", gate] if gate else [])
    assert main(argv) == code
    out = capsys.readouterr().out
    assert "iteration p50" in out and ("+9.1 %" in out or "-8.4 %" in out)
    if code == 1:
        assert "FAIL" in out


def test_gate_without_steps_is_an_error(runs: Path, tmp_path: Path) -> None:
    empty = make_run(tmp_path, "20260101-120000-empty-abcd")
    (empty / "metrics" / "steps.parquet").unlink()
    assert main(["compare", str(runs / RUN_ID), str(empty), "--fail-above", "5"]) == 2
    assert main(["compare", str(runs / RUN_ID), str(empty)]) == 0


@pytest.mark.parametrize(("text", "value"), [("5%", 5.0), ("2.5 %", 2.5), ("0", 0.0)])
def test_parse_percent(text: str, value: float) -> None:
    assert parse_percent(text) == value


@pytest.mark.parametrize("text", ["x", "-3%", "nan"])
def test_parse_percent_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_percent(text)
