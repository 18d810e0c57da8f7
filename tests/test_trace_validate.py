"""The validation layer (dsprof.trace.validate): what fails is dropped, counted and said in notices."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from trace_synthetic import TraceBuilder, trace_run

from dsprof.analyzers import analyze_run
from dsprof.trace import load_trace


def _healthy(tmp_path: Path, name: str = "t.json", **meta: object) -> Path:
    tb = TraceBuilder(base_ns=1_000_000_000)
    tb.meta.update(meta)
    for i in range(3):
        tb.step(i, i * 100.0, 100.0)
        tb.kernel("gemm_kernel", i * 100.0 + 10, 80.0, launch_ts=i * 100.0 + 5)
    return tb.write(tmp_path / name)


@pytest.mark.parametrize("version", [99, "abc", None, 1.5], ids=["99", "text", "null", "float"])
def test_unknown_schema_version_is_a_notice(tmp_path: Path, version: object) -> None:
    tf = load_trace(_healthy(tmp_path, schemaVersion=version))
    assert [n.code for n in tf.notices] == ["unknown-schema-version"]
    assert str(tf.path) in tf.notices[0].message
    doc = analyze_run(trace_run(tf.path))
    assert [n.code for n in doc.notices] == ["unknown-schema-version"]


def test_known_schema_version_says_nothing(tmp_path: Path) -> None:
    assert load_trace(_healthy(tmp_path)).notices == []


def test_unknown_schema_version_warns_on_stderr_and_goes_on(tmp_path: Path) -> None:
    path = _healthy(tmp_path, schemaVersion=99)
    proc = subprocess.run(
        [sys.executable, "-m", "dsprof", "analyze", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith(f"dsprof: warning: {path}: schemaVersion 99 is not one")
    doc = json.loads(proc.stdout)
    assert [n["code"] for n in doc["notices"]] == ["unknown-schema-version"]
