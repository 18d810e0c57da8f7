"""The terminal summary of `dsprof run` and the HTML report agree on every figure both show.

Both read the run's key numbers (run.json's summary, dsprof.core.manifest.summarize_tables); the
terminal and the page round them differently, so two figures agree when the intervals their
displayed digits stand for overlap.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from report_synthetic import make_run
from rich.console import Console

from dsprof.core.findings import FindingsDocument
from dsprof.report.build import build_report
from dsprof.report.html import render_html
from dsprof.report.text import run_summary
from dsprof.runner.finalize import summarize
from dsprof.store.documents import write_model
from dsprof.store.run_store import load_run

NUMBER = r"([0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)"
UNITS = {"ns": 1, "µs": 1e3, "ms": 1e6, "s": 1e9, "B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
# terminal line patterns -> the KPI key of the same figure in the report
TERMINAL = {
    "steps": rf"iterations\s+{NUMBER}\b",
    "p50": rf"p50 {NUMBER} (µs|ms|s)\b",
    "p99": rf"p99 {NUMBER} (µs|ms|s)\b",
    "throughput": rf"throughput\s+{NUMBER} iterations/s",
    "peak_rss": rf"RSS {NUMBER} (B|KiB|MiB|GiB)",
    "peak_cuda": rf"CUDA allocated {NUMBER} (B|KiB|MiB|GiB)",
    "cpu": rf"CPU {NUMBER}%",
    "gpu_util": rf"GPU {NUMBER}%",
}
HTML_KPI = re.compile(
    r'data-kpi="([a-z0-9_]+)"><div class="label">[^<]*</div><div class="value">([^<]*)</div>'
)


def displayed(number: str, unit: str | None = None) -> tuple[float, float]:
    """(value, half of the last displayed digit's unit) of a number as shown, in base units."""
    mantissa, _, exponent = number.partition("e")
    decimals = len(mantissa.partition(".")[2])
    scale = UNITS.get(unit or "", 1) * 10 ** int(exponent or 0)
    return float(mantissa) * scale, 0.5 * 10**-decimals * scale


def terminal_figures(text: str) -> dict[str, tuple[float, float]]:
    out = {}
    for key, pattern in TERMINAL.items():
        m = re.search(pattern, text)
        if m:
            out[key] = displayed(*m.groups())
    return out


def html_figures(page: str) -> dict[str, tuple[float, float]]:
    out = {}
    for key, value in HTML_KPI.findall(page):
        m = re.fullmatch(rf"{NUMBER}\s*(%|ns|µs|ms|s|B|KiB|MiB|GiB)?", html.unescape(value))
        if m:
            number, unit = m.groups()
            out[key] = displayed(number, None if unit == "%" else unit)
    return out


def assert_agree(run_dir: Path, terminal: str, expected: set[str]) -> None:
    page = render_html(build_report(load_run(run_dir)), cdn=True)
    term, rep = terminal_figures(terminal), html_figures(page)
    both = set(term) & set(rep)
    assert expected <= both, (expected - both, terminal)
    for key in sorted(both):
        (a, da), (b, db) = term[key], rep[key]
        assert abs(a - b) < da + db, (key, term[key], rep[key])


def render(run_dir: Path) -> str:
    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    run = load_run(run_dir)
    for part in run_summary(run_dir, run.manifest, run.findings or FindingsDocument()):
        console.print(part)
    return console.export_text()


SCRIPT = textwrap.dedent(
    """
    import torch
    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.GELU(), torch.nn.Linear(256, 8))
    with torch.inference_mode():
        for _ in range(30):
            model(torch.randn(512, 256))
    """
)


def test_a_real_run_prints_what_its_report_shows(tmp_path: Path) -> None:
    (tmp_path / "mlp.py").write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, "-m", "dsprof", "run", "--out", "runs", "--sample-hz", "50", "mlp.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert_agree(run_dir, proc.stderr, {"steps", "p50", "p99", "throughput", "peak_rss", "cpu"})


@pytest.mark.parametrize("gpu", [True, False], ids=["gpu", "cpu"])
def test_the_summary_and_the_report_agree_on_recorded_tables(tmp_path: Path, gpu: bool) -> None:
    run_dir = make_run(tmp_path, gpu=gpu)
    run = load_run(run_dir)
    assert run.manifest is not None
    manifest = run.manifest.model_copy(update={"summary": summarize(run.paths, 1)})
    write_model(run.paths.manifest, manifest)
    expected = {"steps", "p50", "p99", "throughput", "peak_rss", "cpu"}
    if gpu:
        expected |= {"gpu_util", "peak_cuda"}
    assert_agree(run_dir, render(run_dir), expected)
    # and the numbers behind both are the same object's
    assert build_report(load_run(run_dir)).view.steps == manifest.summary
