"""`dsprof ls` reads at 80 columns, and short ids name runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_synthetic import RUN_ID, make_run

from dsprof.cli.main import main
from dsprof.core.errors import UsageError
from dsprof.store.documents import read_manifest, write_model
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import RunStore

LONG = "20260101-130000-a_script_with_a_rather_long_name_indeed-12ef"


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    make_run(tmp_path)
    long = RunPaths(make_run(tmp_path, LONG, base_ms=250.0, gpu=False))
    manifest = read_manifest(long.manifest)
    target = "scripts/a_script_with_a_rather_long_name_indeed.py"
    write_model(long.manifest, manifest.model_copy(update={"target": target}))
    return tmp_path


def test_ls_fits_80_columns_without_cutting_a_number(
    runs: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["ls", str(runs)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, out
    table = [line for line in lines if line.startswith(("abcd", "12ef"))]
    assert len(table) == 2, out
    # every figure whole: iterations, p50, p99, iterations/s, RSS; only a long name is cut
    assert "11.4 ms" in table[1] and "87.7" in table[1] and "806 MiB" in table[1], out
    assert "261 ms" in table[0] and "a_script_with" in table[0], out
    assert all("…" not in cell for line in table for cell in line.split()[4:]), out
    assert "it = iteration" in out


def test_a_short_id_names_a_run_when_one_run_has_it(runs: Path) -> None:
    store = RunStore(runs)
    assert store.resolve("12ef").name == LONG
    assert store.resolve("abcd").name == RUN_ID
    make_run(runs, "20260101-140000-other-abcd")
    with pytest.raises(UsageError, match="short id abcd names 2 runs"):
        store.resolve("abcd")


def test_report_takes_a_short_id(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "12ef", "--format", "md", "--runs-dir", str(runs)]) == 0
    assert "iteration p50" in capsys.readouterr().out
