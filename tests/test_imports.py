"""Heavy imports stay where they are needed (STYLE.md): these import without torch or dash."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "modules",
    [
        "dsprof, dsprof.core, dsprof.store",
        "dsprof.report.text, dsprof.report.view_model, dsprof.report.markdown",
        "dsprof.cli.main, dsprof.cli.ls, dsprof.cli.run, dsprof.cli.analyze, dsprof.cli.report",
        "dsprof.collectors.host, dsprof.collectors.nvml, dsprof.collectors.environment",
    ],
    ids=["core-store", "report", "cli", "parent-collectors"],
)
def test_imports_without_torch_or_dash(modules):
    code = (
        f"import sys; import {modules}; "
        "heavy = [m for m in ('torch', 'dash', 'pynvml') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_analyze_forks_its_parser_before_pandas_loads():
    """Everything `dsprof analyze` imports before forking its parse workers is light: no pandas,
    pyarrow or pydantic (they load in the parent while the worker parses)."""
    code = (
        "import sys; import dsprof.cli.main, dsprof.trace.files, dsprof.trace.workers, "
        "dsprof.trace.parse; "
        "heavy = [m for m in ('pandas', 'pyarrow', 'pydantic', 'torch') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
