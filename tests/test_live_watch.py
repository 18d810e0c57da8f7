"""`dsprof watch` end to end on real processes: a service's own /metrics, a service that exits
mid-watch, bad input (no such PID, a port in use, neither PID nor --name)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from live_support import dsprof, env, stop

from dsprof.load.service import free_port
from dsprof.store.documents import read_manifest

METRICS_SERVICE = Path(__file__).parent / "data" / "live" / "metrics_service.py"


def _start(*args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(METRICS_SERVICE), *args], stdout=subprocess.PIPE, env=env()
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


def test_watch_reads_a_services_own_prometheus_histogram(tmp_path):
    port = free_port()
    svc = _start("--port", str(port))
    try:
        r = dsprof(
            "watch", str(svc.pid), "--for", "4s", "--out", "runs",
            "--service-metrics", f"http://127.0.0.1:{port}/metrics",
            cwd=tmp_path,
        )  # fmt: skip
    finally:
        stop(svc)
    assert r.returncode == 0, r.stderr
    assert "req/s" in r.stderr and "p50" in r.stderr  # the last view, printed on a non-terminal
    # a watch has no steps by design: the summary says what was analysed, not "nothing measured"
    assert "no steps" not in r.stderr.lower() and "No steps were recorded" not in r.stderr
    (run,) = (tmp_path / "runs").iterdir()
    findings = json.loads((run / "findings.json").read_text())
    assert "run-without-steps" not in {n["code"] for n in findings["notices"]}
    assert findings["analyzers_failed"] == {}
    counts = pd.read_parquet(run / "metrics" / "service_requests.parquet")
    assert counts["requests_total"].iloc[-1] > counts["requests_total"].iloc[0] > 0
    assert "latency_le_0.05_s" in counts  # the service's own buckets
    assert read_manifest(run / "run.json").collectors["service_requests"].ok


def test_a_service_that_exits_mid_watch_keeps_the_run_marked(tmp_path):
    exit_file = tmp_path / "exit"
    svc = _start("--port", str(free_port()), "--exit-file", str(exit_file))
    watch = None
    try:
        watch = subprocess.Popen(
            [sys.executable, "-m", "dsprof", "watch", str(svc.pid), "--for", "120s",
             "--out", "runs", "-q"],
            cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        # the service exits once the watch runs (its folder is made before sampling starts)
        deadline = time.monotonic() + 60
        while not list((tmp_path / "runs").glob("*/metrics")):
            assert watch.poll() is None and time.monotonic() < deadline, "no watch folder"
            time.sleep(0.1)
        time.sleep(2)
        exit_file.touch()
        _, err = watch.communicate(timeout=90)
    finally:
        stop(svc)
        if watch is not None and watch.poll() is None:
            watch.kill()
            watch.wait(10)
    r = subprocess.CompletedProcess(watch.args, watch.returncode, "", err)
    assert r.returncode == 0, r.stderr
    assert f"the watched process (PID {svc.pid}) exited after" in r.stderr
    (run,) = (tmp_path / "runs").iterdir()
    manifest = read_manifest(run / "run.json")
    assert manifest.status == "interrupted" and "exited after" in (manifest.error or "")
    assert len(pd.read_parquet(run / "metrics" / "host.parquet")) >= 1


def test_watch_bad_input(tmp_path):
    r = dsprof("watch", "999999999", cwd=tmp_path)
    assert r.returncode == 2 and "no process with PID 999999999" in r.stderr
    r = dsprof("watch", cwd=tmp_path)
    assert r.returncode == 2 and "give a PID or --name" in r.stderr
    r = dsprof("watch", "--name", "no-such-process-xyzzy-0", cwd=tmp_path)
    assert r.returncode == 2 and "no process of yours matches" in r.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = dsprof("watch", "1", "--metrics", f"127.0.0.1:{port}", cwd=tmp_path)
    # PID 1 is another user's unless the tests run as root: either way a one-line error
    assert r.returncode == 2, r.stderr
    assert "cannot listen on" in r.stderr or "not to you" in r.stderr
    assert not (tmp_path / ".dsprof").exists()
