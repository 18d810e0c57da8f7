"""`dsprof compare A B --fail-above PCT`: what changed, the noise verdict, the deltas and the
CI gate's exit status (synthetic runs, and real runs of one script)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from report_synthetic import RUN_ID, make_run

from dsprof.cli.main import main
from dsprof.core.errors import UsageError
from dsprof.report.compare import compare_refs, parse_percent
from dsprof.store.documents import read_findings, read_manifest, write_model

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
    it = cmp.iteration
    assert it is not None and it.low_pct <= it.change_pct <= it.high_pct
    assert it.verdict == "slower" and it.low_pct > 5  # synthetic runs: no noise to speak of
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
        assert "FAIL" in out and "lies wholly above 5 %" in out


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


def test_what_changed_and_a_different_target_warn(runs: Path, tmp_path: Path) -> None:
    other = make_run(tmp_path, "20260101-120000-other-abcd", gpu=False)
    manifest = read_manifest(other / "run.json")
    env = manifest.environment.model_copy(update={"torch": "2.14.0"})  # type: ignore[union-attr]
    changed = manifest.model_copy(
        update={"target": "serve.py", "argv": ["serve.py", "--batch", "8"], "environment": env}
    )
    write_model(other / "run.json", changed)
    cmp = compare_refs(runs / RUN_ID, other)
    rows = {name: (a, b) for name, a, b in cmp.what_changed}
    assert rows["torch"] == ("2.13.0", "2.14.0")
    assert rows["arguments"] == ("--batch 1", "--batch 8")
    assert "target" in rows and "GPUs" in rows
    assert cmp.warnings and "different targets" in cmp.warnings[0]


def test_one_script_started_from_two_directories_is_one_target(runs: Path, tmp_path: Path) -> None:
    a = make_run(tmp_path, "20260101-120000-a-abcd", gpu=False)
    b = make_run(tmp_path, "20260101-120000-b-abcd", gpu=False)
    ma = read_manifest(a / "run.json")
    write_model(
        a / "run.json", ma.model_copy(update={"target": "/repo/examples/x.py", "cwd": "/tmp"})
    )
    write_model(b / "run.json", ma.model_copy(update={"target": "examples/x.py", "cwd": "/repo"}))
    cmp = compare_refs(a, b)
    assert cmp.warnings == []  # the same file, typed two ways
    rows = {name: (va, vb) for name, va, vb in cmp.what_changed}
    assert "target" not in rows and rows["working directory"] == ("/tmp", "/repo")
    write_model(b / "run.json", ma.model_copy(update={"target": "/other/x.py", "cwd": "/repo"}))
    (warning,) = compare_refs(a, b).warnings
    assert warning == "same script name, different paths (/repo/examples/x.py and /other/x.py)"


def test_severity_and_impact_changes(runs: Path, tmp_path: Path) -> None:
    moved = make_run(tmp_path, "20260101-120000-moved-abcd")
    doc = read_findings(moved / "findings.json")
    doc.findings[0] = doc.findings[0].model_copy(update={"severity": "medium", "impact": 0.1})
    write_model(moved / "findings.json", doc)
    cmp = compare_refs(runs / RUN_ID, moved)
    (change,) = cmp.changed_findings
    assert change.text == "gpu-idle: high → medium, impact 42% → 10%"


def test_markdown_for_a_pull_request(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["compare", RUN_ID, SLOWER, "--runs-dir", str(runs), "--format", "md"]
    assert main([*argv, "--fail-above", "5%"]) == 1
    md = capsys.readouterr().out
    first = md.splitlines()[2]
    assert first.startswith("**Iteration p50 +9.1 % [") and "slower" in first and "FAILED" in first
    assert "| iteration p50 | 11.4 ms | 12.4 ms | +9.1 % |" in md
    assert "gone in B: gpu-idle, small-batch" in md
    assert "<b>" not in md  # names from run folders are escaped


def test_too_few_iterations_cannot_be_gated(runs: Path, tmp_path: Path) -> None:
    short = make_run(tmp_path, "20260101-120000-short-abcd", n_steps=4)
    cmp = compare_refs(runs / RUN_ID, short)
    assert cmp.iteration is None and "too few iterations" in cmp.iteration_note
    assert main(["compare", str(runs / RUN_ID), str(short), "--fail-above", "5"]) == 2


# the same loop, whose iteration time is a fixed sequence of sleeps (seeded): two runs differ
# only by the machine's noise; --slower stretches every sleep by half
SLEEPER = textwrap.dedent(
    """
    import random, sys, time
    import torch
    rng = random.Random(0)
    stretch = 1.5 if "--slower" in sys.argv else 1.0
    model = torch.nn.Linear(8, 8)
    with torch.inference_mode():
        for _ in range(40):
            model(torch.randn(2, 8))
            time.sleep(rng.uniform(0.004, 0.030) * stretch)
    """
)


@pytest.mark.slow  # three real dsprof runs: 50 s at load 21 on the shared 2-core machine
def test_two_runs_of_one_script_are_within_noise_and_a_real_slowdown_is_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    runs = tmp_path / "runs"
    folders: list[Path] = []
    for args in ([], [], ["--slower"]):
        proc = subprocess.run(
            [sys.executable, "-m", "dsprof", "run", "--out", str(runs), "-q", "--no-trace",
             "sleeper.py", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        # each run's folder is the one it added (no waiting for the next second to sort by)
        (new,) = {p for p in runs.iterdir() if p.is_dir()} - set(folders)
        folders.append(new)
    first, second, slower = folders
    same = compare_refs(first, second)
    assert same.iteration is not None and same.iteration.verdict == "within noise", same.headline
    assert not same.fails(5.0)
    assert main(["compare", str(first), str(second), "--fail-above", "5%"]) == 0
    assert "within noise" in capsys.readouterr().out
    worse = compare_refs(first, slower)
    assert worse.iteration is not None and worse.iteration.verdict == "slower", worse.headline
    assert worse.fails(5.0)
    assert ("arguments", "-", "--slower") in worse.what_changed
