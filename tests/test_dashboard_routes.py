"""The dashboard's server side: routes, run-id validation (404s), and the listening address."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from report_synthetic import RUN_ID, make_run

from dsprof.dashboard.app import create_app, resolve_route
from dsprof.store.run_store import RunStore

OTHER = "20260101-120000-other-abcd"
TRIAL = "20260101-120100-compile-0001"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_run(root, fix=True)
    make_run(root, OTHER, gpu=False)
    # a trial run folder under the baseline, as `dsprof fix` writes it
    make_run(root / RUN_ID / "trials", TRIAL, findings=False)
    (root / "not-a-run-id").mkdir()
    (root / "not-a-run-id" / "run.json").write_text("{}", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def client(runs: Path):
    return create_app(RunStore(runs)).server.test_client()


@pytest.mark.parametrize(
    "path",
    [
        "/",
        f"/runs/{RUN_ID}",
        f"/runs/{RUN_ID}/",
        f"/runs/{RUN_ID}/fix",
        f"/runs/{RUN_ID}/trials/{TRIAL}",
        f"/compare/{RUN_ID}/{OTHER}",
        "/_dash-layout",
        "/_dash-dependencies",
    ],
)
def test_pages_are_served(client, path: str) -> None:
    assert client.get(path).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/runs/../../etc/passwd",
        "/runs/..%2F..%2Fetc%2Fpasswd",
        "/runs/%2e%2e/%2e%2e/etc/passwd",
        "/runs/..",
        "/etc/passwd",
        "/runs/20260101-120000-missing-abcd",
        "/runs/not-a-run-id",
        f"/runs/{RUN_ID}/trials/..",
        f"/runs/{RUN_ID}/trials/../../{OTHER}",
        f"/runs/{RUN_ID}/nope",
        f"/compare/{RUN_ID}/..",
        "/assets/../../run.json",
    ],
)
def test_traversal_and_unknown_paths_get_404(client, path: str) -> None:
    assert client.get(path).status_code == 404


def test_resolve_route(runs: Path) -> None:
    store = RunStore(runs)
    assert resolve_route(store, "/").page == "runs"
    route = resolve_route(store, f"/runs/{RUN_ID}/trials/{TRIAL}")
    assert route is not None and route.page == "trial"
    assert route.run_dirs == (runs / RUN_ID / "trials" / TRIAL,)
    assert resolve_route(store, f"/runs/{RUN_ID}/../{OTHER}") is None


def test_callback_rejects_traversal_pathname(client) -> None:
    # a client may post any pathname to the routing callback: it must not read outside the store
    body = {
        "output": "..page.children...refresh.disabled..",
        "outputs": [
            {"id": "page", "property": "children"},
            {"id": "refresh", "property": "disabled"},
        ],
        "inputs": [
            {"id": "url", "property": "pathname", "value": "/runs/../../etc"},
            {"id": "refresh", "property": "n_intervals", "value": None},
        ],
        "changedPropIds": ["url.pathname"],
        "state": [],
    }
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code == 200
    assert b"not-found" in response.data and b"passwd" not in response.data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_binds_loopback_by_default(runs: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsprof", "dashboard", str(runs), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        addresses: set[str] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not addresses:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            addresses = {
                c.laddr.ip
                for c in psutil.Process(proc.pid).net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == port
            }
            time.sleep(0.2)
        assert addresses == {"127.0.0.1"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_missing_runs_dir(tmp_path: Path) -> None:
    from dsprof.cli.main import main

    assert main(["dashboard", str(tmp_path / "none")]) == 2


def test_unreadable_run_gets_a_page_that_says_why(tmp_path: Path) -> None:
    root = make_run(tmp_path, "20260101-120000-broken-abcd")
    (root / "metrics" / "steps.parquet").write_bytes(b"PAR1 truncated")
    client = create_app(RunStore(tmp_path)).server.test_client()
    body = {
        "output": "..page.children...refresh.disabled..",
        "outputs": [
            {"id": "page", "property": "children"},
            {"id": "refresh", "property": "disabled"},
        ],
        "inputs": [
            {"id": "url", "property": "pathname", "value": f"/runs/{root.name}"},
            {"id": "refresh", "property": "n_intervals", "value": None},
        ],
        "changedPropIds": ["url.pathname"],
        "state": [],
    }
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code == 200
    assert b"run-error" in response.data and b"steps.parquet" in response.data
