"""The HTML report in headless Chromium, on a synthetic run and on a real `dsprof run` run.

The real run profiles tests/data/report/evil_names.py: an op named `</script><b>x` from
record_function and a module class named `<b>Evil</b>Net`, recorded by the real collectors.
Both must show as text in the report and in the dashboard.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from browser_support import ConsoleErrors, chromium, screenshot
from report_synthetic import EVIL_MODULE, EVIL_OP, RUN_ID, make_run

from dsprof.cli.main import main

pytestmark = pytest.mark.browser

EVIL_SCRIPT = Path(__file__).parent / "data" / "report" / "evil_names.py"
TIMEOUT_MS = 20_000
# every figure the report draws leaves at least one plotly SVG root in its div
FIGURE_SVG = "#fig-{key} .main-svg"


def _open(ctx, path: Path, tmp_path: Path, name: str):
    page = ctx.new_page()
    errors = ConsoleErrors(page)
    page.goto(path.as_uri())
    page.wait_for_selector(".figure .main-svg", timeout=TIMEOUT_MS)
    screenshot(page, name, tmp_path)
    return page, errors


def test_synthetic_report_in_chromium(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, fix=True, ranks=2)
    out = tmp_path / "report.html"
    assert main(["report", str(runs / RUN_ID), "-o", str(out)]) == 0  # plotly.js inlined
    with chromium() as ctx:
        page, errors = _open(ctx, out, tmp_path, "report-synthetic")
        keys = page.eval_on_selector_all(".figure", "els => els.map(e => e.id.slice(4))")
        assert keys == ["breakdown", "timeline", "latency", "cuda_memory", "ranks", "fix"]
        for key in keys:
            assert page.locator(FIGURE_SVG.format(key=key)).count() >= 1, key
        assert page.locator(".finding-title").first.inner_text() == (
            f"GPU idle 42% of the step, waiting on {EVIL_OP}"
        )
        assert page.locator("#modules").inner_text() == EVIL_MODULE
        assert EVIL_OP in (page.locator("#fix-banner pre.diff").text_content() or "")
        assert EVIL_OP in page.locator("#fig-fix .xtick").all_text_contents()
        assert page.locator("b").count() == 0
        assert errors.errors == []


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run of the evil-names script through `dsprof run`."""
    out = tmp_path_factory.mktemp("real-runs")
    proc = subprocess.run(
        [sys.executable, "-m", "dsprof", "run", "--out", str(out), "-q", str(EVIL_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=out,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = [p for p in out.iterdir() if (p / "run.json").is_file()]
    return run_dir


@pytest.mark.slow
def test_real_run_report_and_dashboard(real_run: Path, tmp_path: Path) -> None:
    from werkzeug.serving import make_server

    from dsprof.dashboard.app import create_app
    from dsprof.store.run_store import RunStore

    findings = json.loads((real_run / "findings.json").read_text(encoding="utf-8"))["findings"]
    top = max(findings, key=lambda f: f["impact"])["title"] if findings else None
    out = tmp_path / "real.html"
    assert main(["report", str(real_run), "-o", str(out)]) == 0
    srv = make_server("127.0.0.1", 0, create_app(RunStore(real_run.parent)).server, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with chromium() as ctx:
            page, errors = _open(ctx, out, tmp_path, "report-real-run")
            for key in ("timeline", "latency", "ops", "annotations"):
                assert page.locator(FIGURE_SVG.format(key=key)).count() >= 1, key
            # the record_function op and the module class, recorded for real, shown as text
            assert EVIL_OP in page.locator("#fig-annotations .ytick").all_text_contents()
            assert page.locator("#modules").inner_text() == EVIL_MODULE
            assert page.locator(".finding").count() == len(findings)
            if top is not None:
                assert page.locator(".finding-title").first.inner_text() == top
            assert page.locator("b").count() == 0
            assert errors.errors == []

            page = ctx.new_page()
            errors = ConsoleErrors(page)
            page.goto(f"http://127.0.0.1:{srv.server_port}/")
            page.click(f"#runs-table a:text('{real_run.name}')")
            page.wait_for_selector("#fig-annotations .main-svg", timeout=TIMEOUT_MS)
            assert EVIL_OP in page.locator("#fig-annotations .ytick").all_text_contents()
            assert EVIL_MODULE in page.locator("#run-target").inner_text()
            titles = page.locator(".finding-title").all_inner_texts()
            assert titles[:1] == ([top] if top is not None else [])
            assert page.locator("b").count() == 0
            screenshot(page, "dashboard-real-run", tmp_path)
            assert errors.errors == []
    finally:
        srv.shutdown()
