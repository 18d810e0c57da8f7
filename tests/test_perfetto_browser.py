""" "Open in Perfetto": the dashboard hands a run's trace to the Perfetto UI with its postMessage
handshake. The UI is a stub page served from 127.0.0.1 (no internet here) that answers PING with
PONG and keeps what it receives, as ui.perfetto.dev does."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import ConsoleErrors, chromium, screenshot
from report_synthetic import RUN_ID, make_run

from dsprof.dashboard.app import create_app
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import RunStore

pytestmark = pytest.mark.browser

TRACE = Path(__file__).parent / "data/traces/tracelens/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz"
TIMEOUT_MS = 20_000
# what ui.perfetto.dev does on its side of the documented handshake
STUB = b"""<!doctype html><html><head><title>perfetto stub</title></head><body>
<p id="state">waiting</p>
<script>
window.received = null;
window.addEventListener("message", function (e) {
  if (e.data === "PING") { e.source.postMessage("PONG", e.origin); return; }
  if (e.data && e.data.perfetto) {
    var p = e.data.perfetto, bytes = new Uint8Array(p.buffer);
    window.received = {size: bytes.length, head: Array.from(bytes.slice(0, 2)),
                       title: p.title, url: p.url, origin: e.origin};
    document.getElementById("state").textContent = "received " + bytes.length + " bytes";
  }
});
</script></body></html>"""


class _Stub(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(STUB)

    def log_message(self, *args: object) -> None:
        pass


def _serve(server: object) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)  # type: ignore[attr-defined]
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"  # type: ignore[attr-defined]
    server.shutdown()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def perfetto() -> Iterator[str]:
    yield from _serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    run = RunPaths(make_run(root))
    shutil.copy(TRACE, run.trace_dir / "box_1234.pt.trace.json.gz")
    return root


@pytest.fixture(scope="module")
def dashboard(runs: Path, perfetto: str) -> Iterator[str]:
    from werkzeug.serving import make_server

    app = create_app(RunStore(runs), perfetto_url=perfetto)
    yield from _serve(make_server("127.0.0.1", 0, app.server, threaded=True))


def test_open_in_perfetto_hands_the_trace_over_with_the_handshake(
    dashboard: str, perfetto: str, tmp_path: Path
) -> None:
    with chromium() as ctx:
        page = ctx.new_page()
        errors = ConsoleErrors(page)
        page.goto(f"{dashboard}/runs/{RUN_ID}")
        button = page.locator("#perfetto-open")
        button.wait_for(timeout=TIMEOUT_MS)
        with ctx.expect_page(timeout=TIMEOUT_MS) as popup_info:
            button.click()
        popup = popup_info.value
        popup.wait_for_function("window.received !== null", timeout=TIMEOUT_MS)
        got = popup.evaluate("window.received")
        assert got["size"] == TRACE.stat().st_size  # every byte, as stored (gzip)
        assert got["head"] == [0x1F, 0x8B]
        assert got["origin"] == dashboard  # served from this dashboard on 127.0.0.1
        assert RUN_ID in got["title"] and got["url"].endswith(f"/runs/{RUN_ID}")
        page.wait_for_function(
            "document.querySelector('#perfetto-open').dataset.perfettoStatus === 'sent'",
            timeout=TIMEOUT_MS,
        )
        screenshot(popup, "perfetto-stub", tmp_path)
        assert errors.errors == []


def test_the_trace_route_serves_trace_files_only(dashboard: str) -> None:
    import urllib.error
    import urllib.request

    ok = urllib.request.urlopen(f"{dashboard}/trace/{RUN_ID}/trace/box_1234.pt.trace.json.gz")
    assert ok.read() == TRACE.read_bytes()
    for path in (
        f"/trace/{RUN_ID}/run.json",
        f"/trace/{RUN_ID}/trace/missing.json.gz",
        f"/trace/{RUN_ID}/trace/..%2frun.json",
        "/trace/../../etc/passwd",
        "/trace/not-an-id/trace/box_1234.pt.trace.json.gz",
    ):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(dashboard + path)
        assert e.value.code == 404, path
