"""The dashboard in headless Chromium: navigation, charts, names as text, live refresh."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import ConsoleErrors, chromium, screenshot
from report_synthetic import EVIL_MODULE, EVIL_OP, RUN_ID, make_run

from dsprof.dashboard.app import create_app
from dsprof.store.run_store import RunStore

pytestmark = pytest.mark.browser

SLOWER = "20260101-120000-slower-abcd"
LIVE = "20260101-120000-live-abcd"
TRIAL = "20260101-120100-compile-0001"  # the first trial's run folder in report_synthetic
REFRESH_MS = 400
TIMEOUT_MS = 20_000


def _write_live_steps(root: Path, rows: list[dict]) -> None:
    (root / "metrics" / "steps.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_run(root, fix=True, ranks=2)
    make_run(root / RUN_ID / "trials", TRIAL, base_ms=5.5, findings=False)
    make_run(root, SLOWER, base_ms=11.0, gpu=False)
    live = make_run(root, LIVE, status="running", findings=False, gpu=False)
    (live / "metrics" / "steps.parquet").unlink()  # in progress: only the live file exists
    return root


@pytest.fixture(scope="module")
def server(runs: Path) -> Iterator[str]:
    from werkzeug.serving import make_server

    app = create_app(RunStore(runs), refresh_ms=REFRESH_MS)
    srv = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as ctx:
        yield ctx


def test_runs_list_to_findings(server: str, browser, tmp_path: Path) -> None:
    page = browser.new_page()
    errors = ConsoleErrors(page)
    page.goto(server + "/")
    page.wait_for_selector(f"#runs-table a:text('{SLOWER}')", timeout=TIMEOUT_MS)
    assert page.locator("#runs-table a").count() == 3
    screenshot(page, "dashboard-runs", tmp_path)
    page.click(f"#runs-table a:text('{RUN_ID}')")
    page.wait_for_url(f"**/runs/{RUN_ID}")
    page.wait_for_selector(".finding-title", timeout=TIMEOUT_MS)
    page.wait_for_selector("#fig-timeline .main-svg", timeout=TIMEOUT_MS)
    titles = page.locator(".finding-title").all_inner_texts()
    assert (
        titles[0] == f"GPU idle 42% of the step, waiting on {EVIL_OP}"
    )  # the top finding, as text
    assert EVIL_MODULE in page.locator("#run-target").inner_text()
    assert page.locator("b").count() == 0  # no name became markup
    for key in ("timeline", "latency", "cuda_memory", "ranks", "fix"):
        assert page.locator(f"#fig-{key} .main-svg").count() >= 1, key
    # the fix figure's axis shows the trial named after the op literally
    assert EVIL_OP in page.locator("#fig-fix .xtick").all_text_contents()
    screenshot(page, "dashboard-run", tmp_path)
    assert errors.errors == []
    page.close()


def test_runs_list_sort_and_filter(server: str, browser) -> None:
    page = browser.new_page()
    page.goto(server + "/")
    page.wait_for_selector(f"#runs-table a:text('{SLOWER}')", timeout=TIMEOUT_MS)
    links = page.locator("#runs-table a")
    status_filter = page.locator(
        "#runs-table th.dash-filter[data-dash-column=status] input[type=text]"
    )
    status_filter.fill("ok")  # leaves out the run still in progress
    status_filter.press("Enter")
    page.wait_for_function(
        "document.querySelectorAll('#runs-table a').length === 2", timeout=TIMEOUT_MS
    )
    sort_p50 = page.locator("#runs-table th[data-dash-column=p50_ms] .column-header--sort")
    sort_p50.click()  # ascending
    page.wait_for_function(
        f"document.querySelector('#runs-table a').textContent === '{RUN_ID}'", timeout=TIMEOUT_MS
    )
    assert links.all_inner_texts() == [RUN_ID, SLOWER]
    sort_p50.click()  # descending
    page.wait_for_function(
        f"document.querySelector('#runs-table a').textContent === '{SLOWER}'", timeout=TIMEOUT_MS
    )
    assert links.all_inner_texts() == [SLOWER, RUN_ID]
    page.close()


def test_fix_and_compare_pages(server: str, browser, tmp_path: Path) -> None:
    page = browser.new_page()
    errors = ConsoleErrors(page)
    page.goto(f"{server}/runs/{RUN_ID}/fix")
    page.wait_for_selector("#trials tbody tr", timeout=TIMEOUT_MS)
    cells = page.locator("#trials tbody tr td:first-child").all_inner_texts()
    assert cells == ["compile", EVIL_OP, "compile (combined)"]
    page.click("#trials a:text('compile')")  # only the trial whose run folder exists is a link
    page.wait_for_url(f"**/runs/{RUN_ID}/trials/{TRIAL}")
    page.wait_for_selector("#fig-latency .main-svg", timeout=TIMEOUT_MS)
    assert page.locator("#run-title").inner_text() == TRIAL
    # the runs list's picker leads to the comparison
    page.goto(server + "/")
    page.wait_for_selector("#runs-table a", timeout=TIMEOUT_MS)
    page.click("#compare-a")
    page.get_by_role("option", name=RUN_ID).click()
    page.click("#compare-b")
    page.get_by_role("option", name=SLOWER).click()
    page.wait_for_function(
        f"document.querySelector('#compare-link').getAttribute('href') === '/compare/{RUN_ID}/{SLOWER}'",
        timeout=TIMEOUT_MS,
    )
    page.click("#compare-link")
    page.wait_for_url(f"**/compare/{RUN_ID}/{SLOWER}")
    page.wait_for_selector("#fig-iterations .main-svg", timeout=TIMEOUT_MS)
    rows = {r.split("\t")[0]: r for r in page.locator("#deltas tbody tr").all_inner_texts()}
    assert "+9.1 %" in rows["iteration p50"]
    assert page.locator("#fig-timeline-a .main-svg").count() >= 1
    assert "B vs A: iteration p50 +9.1 %" in page.locator("#compare-verdict").inner_text()
    screenshot(page, "dashboard-compare", tmp_path)
    assert errors.errors == []
    page.close()


def test_live_refresh_of_a_running_run(server: str, browser, runs: Path) -> None:
    live = runs / LIVE
    rows = [
        {
            "step": i,
            "start_ns": 1_767_268_800_200_000_000 + i * 20_000_000,
            "end_ns": 1_767_268_800_210_000_000 + i * 20_000_000,
            "duration_ns": 10_000_000,
            "module": "Net",
            "source": "module",
            "traced": False,
        }
        for i in range(6)
    ]
    _write_live_steps(live, rows[:3])
    page = browser.new_page()
    page.goto(f"{server}/runs/{LIVE}")
    steps_kpi = page.locator("[data-kpi=steps] .value")
    steps_kpi.wait_for(timeout=TIMEOUT_MS)
    assert steps_kpi.inner_text() == "2"  # 3 model calls so far: 2 iterations
    assert "running" in page.locator("#run-status").inner_text()
    _write_live_steps(live, rows[:4])
    page.wait_for_function(
        "document.querySelector('[data-kpi=steps] .value').textContent === '3'",
        timeout=TIMEOUT_MS,
    )
    # the runs list refreshes its rows only: the user's filter stays
    page.goto(server + "/")
    filter_cell = page.locator("#runs-table input").first
    filter_cell.wait_for(timeout=TIMEOUT_MS)
    filter_cell.fill("live")
    filter_cell.press("Enter")
    page.wait_for_function(
        "document.querySelectorAll('#runs-table a').length === 1", timeout=TIMEOUT_MS
    )
    _write_live_steps(live, rows)
    page.wait_for_function(
        "[...document.querySelectorAll('#runs-table td')].some(td => td.textContent === '5')",
        timeout=TIMEOUT_MS,
    )
    assert page.locator("#runs-table a").count() == 1
    page.close()


def test_unknown_run_shows_not_found(server: str, browser) -> None:
    page = browser.new_page()
    response = page.goto(f"{server}/runs/20260101-120000-missing-abcd")
    assert response is not None and response.status == 404
    page.close()


def test_new_runs_appear_without_reload_grouped_by_script(browser, tmp_path: Path) -> None:
    from werkzeug.serving import make_server

    from dsprof.store.documents import read_manifest, write_model

    def add_run(run_id: str, hours: int, base_ms: float, fix: bool = False) -> None:
        root = make_run(tmp_path, run_id, base_ms=base_ms, gpu=False, fix=fix)
        m = read_manifest(root / "run.json")
        start = m.start_ns + hours * 3_600_000_000_000
        write_model(
            root / "run.json",
            m.model_copy(update={"target": "newer.py", "start_ns": start, "end_ns": start + 10**9}),
        )

    add_run("20260101-130000-newer-0001", 1, 10.0, fix=True)
    srv = make_server(
        "127.0.0.1", 0, create_app(RunStore(tmp_path), refresh_ms=REFRESH_MS).server, threaded=True
    )
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        page = browser.new_page()
        errors = ConsoleErrors(page)
        page.goto(f"http://127.0.0.1:{srv.server_port}/")
        page.wait_for_selector("#runs-table a", timeout=TIMEOUT_MS)
        assert page.locator("#runs-table a").count() == 1
        assert page.locator("#trends .trend").count() == 0  # one run: nothing to trend yet
        add_run("20260101-140000-newer-0002", 2, 11.0)  # written while the page is open
        page.wait_for_function(
            "document.querySelectorAll('#runs-table a').length === 2", timeout=TIMEOUT_MS
        )
        assert page.locator("#runs-count").inner_text() == "Runs (2)"
        # the newer run against the one before it, on iteration p50 (11.4 -> 12.4 ms)
        page.wait_for_function(
            "[...document.querySelectorAll('#runs-table td')].some(td => td.textContent === '+8.8 %')",
            timeout=TIMEOUT_MS,
        )
        group = page.locator(".script-group[data-script='newer.py']")
        group.locator(".trend .main-svg").first.wait_for(timeout=TIMEOUT_MS)
        assert "2 runs" in group.inner_text()
        legend = group.locator(".legendtext").all_text_contents()
        assert legend == ["iteration p50", "p99", "fix session"]  # the fix session is marked
        screenshot(page, "dashboard-runs-grouped", tmp_path)
        assert errors.errors == []
        page.close()
    finally:
        srv.shutdown()
