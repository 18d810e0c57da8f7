"""Every surface shows the same iteration p50 for a run: the terminal summary of `dsprof run`,
run.json, the HTML report, the markdown summary, `dsprof ls`, `dsprof compare`, the dashboard's
runs list and run page (in Chromium), and the fix verdicts' step times (issue 19: one page
showed two baselines, 31 and 105 ms, for one CNN run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from browser_support import chromium

from dsprof.core.steps import measured_iterations
from dsprof.recipes import verdict as V
from dsprof.report.view_model import format_ns
from dsprof.store.run_store import RunStore, load_run

pytestmark = pytest.mark.browser

# the loop waits 20 ms between model calls: an iteration is ~10x the model call
SCRIPT = textwrap.dedent(
    """
    import time
    import torch
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    with torch.inference_mode():
        for _ in range(25):
            model(torch.randn(16, 64))
            time.sleep(0.02)
    """
)
TIMEOUT_MS = 20_000


def dsprof(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "dsprof", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )


@pytest.mark.slow  # a real run and eight dsprof commands: 28-51 s on the shared 2-core machine
def test_every_surface_shows_the_same_iteration_p50(tmp_path: Path) -> None:
    (tmp_path / "loop.py").write_text(SCRIPT)
    proc = dsprof("run", "--out", "runs", "loop.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    run = load_run(run_dir)
    assert run.manifest is not None
    s = run.manifest.summary
    assert s.basis == "iterations" and s.p50_ns is not None and s.model_p50_ns is not None
    assert s.p50_ns - s.model_p50_ns > 15_000_000  # the iteration: the 20 ms sleep counts
    # the profiler's window (steps 1-5) is left out: the figures are the script's own speed
    assert (s.steps_excluded, s.traced_excluded, s.steps_measured) == (1, 5, 18)
    p50 = format_ns(s.p50_ns)

    # the terminal summary of `dsprof run`
    assert re.search(rf"iteration\s+p50 {re.escape(p50)} ·", proc.stderr), proc.stderr
    assert f"{format_ns(s.model_p50_ns)} of a {p50} iteration" in proc.stderr
    panel = re.sub(r"[│\s]+", " ", proc.stderr)  # the summary panel's lines joined
    assert "first 1 left out, 5 traced left out (the profiler slows them): 18 measured" in panel
    # the HTML report
    assert dsprof("report", str(run_dir), "--cdn", "-o", "r.html", cwd=tmp_path).returncode == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    kpi = re.search(
        r'data-kpi="p50"><div class="label">([^<]*)</div><div class="value">([^<]*)<', page
    )
    assert kpi is not None and kpi.groups() == ("iteration p50", p50)
    assert '<div class="value">24</div><div class="sub">18 measured</div>' in page  # the n
    # the markdown summary
    md = dsprof("report", str(run_dir), "--format", "md", cwd=tmp_path).stdout
    assert f"| iteration p50 | {p50} (model {format_ns(s.model_p50_ns)}) |" in md
    # dsprof ls at 80 columns
    ls = dsprof("ls", "runs", cwd=tmp_path).stdout
    row = next(line for line in ls.splitlines() if line.startswith(run_dir.name[-4:]))
    assert p50 in row.split("  ") or f" {p50} " in f" {row} ", ls
    # dsprof compare (a run against itself: no change, within noise)
    cmp = dsprof("compare", str(run_dir), str(run_dir), cwd=tmp_path).stdout
    line = next(ln for ln in cmp.splitlines() if "iteration p50" in ln and "│" in ln)
    assert [c.strip() for c in line.split("│")[1:4]] == ["iteration p50", p50, p50], cmp
    assert "+0.0 %" in cmp and "within noise" in cmp
    # the fix verdicts time the same iterations (warm-up, and compile steps if any, left out)
    durations, excluded = V.measured_durations(run.steps, run.manifest.warmup_steps)
    _, measured = measured_iterations(run.steps, run.manifest.warmup_steps)
    if excluded == s.steps_excluded + s.traced_excluded:  # no compile step cut as well
        assert np.array_equal(durations, measured.durations_ns)
        assert format_ns(int(np.percentile(durations, 50))) == p50
    # the dashboard: runs list and run page, in a real browser
    from werkzeug.serving import make_server

    from dsprof.dashboard.app import create_app

    srv = make_server("127.0.0.1", 0, create_app(RunStore(run_dir.parent)).server, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with chromium() as ctx:
            page_ = ctx.new_page()
            page_.goto(f"http://127.0.0.1:{srv.server_port}/")
            cell = page_.locator("#runs-table td[data-dash-column=p50_ms]").first
            cell.wait_for(timeout=TIMEOUT_MS)
            assert format_ns(float(cell.inner_text()) * 1e6) == p50
            page_.goto(f"http://127.0.0.1:{srv.server_port}/runs/{run_dir.name}")
            value = page_.locator("[data-kpi=p50] .value")
            value.wait_for(timeout=TIMEOUT_MS)
            assert page_.locator("[data-kpi=p50] .label").inner_text() == "iteration p50"
            assert value.inner_text() == p50
    finally:
        srv.shutdown()
