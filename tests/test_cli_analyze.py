"""`dsprof analyze`: the real CLI in a subprocess, on traces and on a real run folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from trace_cache import DATA


def dsprof(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsprof", "analyze", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_json_on_a_trace() -> None:
    proc = dsprof("--json", str(DATA / "hta/test.json.gz"))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema_version"] == 1
    cats = [f["category"] for f in doc["findings"]]
    assert "host-sync" in cats
    impacts = [f["impact"] for f in doc["findings"]]
    assert impacts == sorted(impacts, reverse=True)
    for f in doc["findings"]:
        assert {"category", "severity", "impact", "title", "evidence", "recipes"} <= set(f)


def test_directory_of_ranks_table() -> None:
    proc = dsprof(str(DATA / "param/dlrm_kineto"))
    assert proc.returncode == 0, proc.stderr
    assert "straggler" in proc.stdout and "rank 1" in proc.stdout


def test_bad_trace_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "cut.json"
    bad.write_text('{"traceEvents": [{"ph": "X"')
    proc = dsprof(str(bad))
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"dsprof: error: {bad}: the JSON ends inside the traceEvents array (the file is truncated)"
    )


def test_run_folder_rewrites_findings(tmp_path: Path) -> None:
    from planted_runs import planted_run

    run = planted_run("io_stall")
    folder = tmp_path / run.paths.root.name
    shutil.copytree(run.paths.root, folder)
    (folder / "findings.json").unlink()
    proc = dsprof(str(folder))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((folder / "findings.json").read_text())
    cats = {f["category"] for f in doc["findings"] if f["severity"] in ("medium", "high")}
    assert "io-stall" in cats
    assert not cats & {
        "gpu-idle",
        "memory-bandwidth-bound",
        "no-tensor-cores",
        "idle-sm",
        "memory-fragmentation",
    }
    assert "findings.json" in proc.stdout
