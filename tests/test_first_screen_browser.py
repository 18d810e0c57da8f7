"""What a user sees first, in headless Chromium: the fix banner, the iteration KPIs, the top
finding with its action and the breakdown under it, on the HTML report and the dashboard's run
page; and no page scrolls sideways at phone width (390 px)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import ConsoleErrors, chromium, screenshot
from report_synthetic import RUN_ID, make_run

from dsprof.cli.main import main
from dsprof.store.run_store import RunStore

pytestmark = pytest.mark.browser

OTHER = "20260101-120000-other-abcd"
TIMEOUT_MS = 20_000
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_run(root, fix=True)
    make_run(root, OTHER, base_ms=11.0, gpu=False)
    return root


@pytest.fixture(scope="module")
def server(runs: Path) -> Iterator[str]:
    from werkzeug.serving import make_server

    from dsprof.dashboard.app import create_app

    srv = make_server("127.0.0.1", 0, create_app(RunStore(runs)).server, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as ctx:
        yield ctx


def _first_screen(page) -> None:  # type: ignore[no-untyped-def]
    """The checks both pages share: banner, KPIs, action, breakdown under the top finding."""
    banner = page.locator("#fix-banner")
    assert banner.is_visible()
    box = banner.bounding_box()
    assert box is not None and box["y"] < 600  # on the first screen, above the numbers
    assert "10 ms → 5.56 ms per iteration" in page.locator("#fix-headline").inner_text()
    noise = page.locator("#fix-noise").inner_text()
    assert "[0.19, 3.18]" in noise and "too wide to judge" in noise and "stable" not in noise
    assert page.locator("[data-kpi=p50] .label").inner_text() == "iteration p50"
    assert page.locator("[data-kpi=p50] .sub").inner_text().startswith("model ")
    first = page.locator(".finding").first
    assert "Do:" in first.locator(".action").inner_text()
    # the raw keys and thresholds are folded away until asked for
    assert not first.locator("details").evaluate("d => d.open")
    assert not first.locator("code:text('gpu_idle_share')").is_visible()
    assert first.locator(".facts li").first.inner_text() == "GPU idle share: 42%"
    # the breakdown figure comes right after the top finding, its part marked
    following = first.evaluate("a => a.nextElementSibling.id || a.nextElementSibling.className")
    assert "fig-breakdown" in following or "figure" in following
    page.wait_for_selector("#fig-breakdown .main-svg", timeout=TIMEOUT_MS)
    legend = page.locator("#fig-breakdown .legendtext").all_text_contents()
    assert any(t.startswith("model") for t in legend) and any("other" in t for t in legend)


def test_report_first_screen(runs: Path, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "report.html"
    assert main(["report", str(runs / RUN_ID), "-o", str(out)]) == 0
    page = browser.new_page()
    errors = ConsoleErrors(page)
    page.goto(out.as_uri())
    page.wait_for_selector("#fig-breakdown .main-svg", timeout=TIMEOUT_MS)
    _first_screen(page)
    action = page.locator(".finding .action").first.inner_text()
    assert "dsprof fix infer.py --batch 1 tests it" in action  # the script's own arguments
    screenshot(page, "first-screen-report", tmp_path)
    assert errors.errors == []
    page.close()


def test_run_page_first_screen(server: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    errors = ConsoleErrors(page)
    page.goto(f"{server}/runs/{RUN_ID}")
    page.wait_for_selector("#fig-breakdown .main-svg", timeout=TIMEOUT_MS)
    _first_screen(page)
    screenshot(page, "first-screen-run-page", tmp_path)
    assert errors.errors == []
    page.close()


@pytest.mark.parametrize(
    "path",
    ["/", f"/runs/{RUN_ID}", f"/runs/{RUN_ID}/fix", f"/compare/{RUN_ID}/{OTHER}", "report"],
    ids=["runs", "run", "fix", "compare", "html-report"],
)
def test_no_sideways_scroll_at_phone_width(
    runs: Path, server: str, browser, tmp_path: Path, path: str
) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.set_viewport_size(PHONE)
    if path == "report":
        out = tmp_path / "report.html"
        assert main(["report", str(runs / RUN_ID), "-o", str(out)]) == 0
        page.goto(out.as_uri())
        page.wait_for_selector("#fig-breakdown .main-svg", timeout=TIMEOUT_MS)
    else:
        page.goto(server + path)
        page.wait_for_selector("#page h1", timeout=TIMEOUT_MS)
        page.wait_for_timeout(800)  # figures and tables laid out
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], (path, width)
    screenshot(page, f"phone-{path.strip('/').replace('/', '-') or 'runs'}", tmp_path)
    page.close()
