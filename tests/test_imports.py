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
