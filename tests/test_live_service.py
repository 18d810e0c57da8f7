"""The BERT service example on 127.0.0.1 under `dsprof load`: watch it, scrape its /metrics with
prometheus-client's parser, take two on-demand traces while it serves, check every run folder
analyses and that the service answered throughout, inside the trace windows too."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest
from live_support import SERVE_BERT, dsprof, env, stop, wait_for_agent
from prometheus_client.parser import text_string_to_metric_families

from dsprof.load.service import free_port, probe
from dsprof.store.documents import read_capture, read_manifest

pytestmark = pytest.mark.slow


def _scrape(url: str) -> dict[str, list]:
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def _wait(cond, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_watch_metrics_and_two_traces_of_the_bert_service_under_load(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/embed"
    service_log = tmp_path / "service.log"  # its stderr, in the failure messages
    with open(service_log, "wb") as log:
        service = subprocess.Popen(
            [sys.executable, str(SERVE_BERT), "--on-demand", "--layers", "2", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**env(), "PYTHONFAULTHANDLER": "1"},  # a crash leaves its threads' stacks
            cwd=tmp_path,
        )

    def service_said() -> str:
        return (
            f"\n--- the service's stderr (exit {service.poll()}) ---\n"
            + service_log.read_text(errors="replace")[-4000:]
        )

    load = watch = None
    try:
        wait_for_agent(service.pid, service)
        _wait(lambda: probe(url, timeout_s=1) is None, 90, "the service to answer")
        load = subprocess.Popen(
            [sys.executable, "-m", "dsprof", "load", url, "--rate", "3", "--duration", "150s",
             "--out", "load-runs", "--pid", str(service.pid)],
            cwd=tmp_path, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

        # watch it for a few seconds, serving Prometheus metrics meanwhile
        mport = free_port()
        watch = subprocess.Popen(
            [sys.executable, "-m", "dsprof", "watch", str(service.pid), "--for", "8s",
             "--metrics", f"127.0.0.1:{mport}", "--out", "watch-runs", "-q"],
            cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        metrics = f"http://127.0.0.1:{mport}/metrics"

        def served() -> dict[str, list] | None:
            if probe(metrics, timeout_s=1) is not None:
                return None
            families = _scrape(metrics)
            done = families.get("dsprof:request_success")
            return families if done and done[0].value > 0 else None

        families = _wait(served, 60, "/metrics to count served requests")
        labels = {"pid": str(service.pid), "service": "serve_bert"}
        assert families["dsprof_process_up"][0].labels == labels
        assert families["dsprof_process_up"][0].value == 1.0
        assert families["dsprof_process_resident_memory_bytes"][0].value > 100 * 2**20
        assert families["dsprof_process_threads"][0].value > 2
        latency = {s.name: s.value for s in families["dsprof:e2e_request_latency_seconds"]}
        assert latency["dsprof:e2e_request_latency_seconds_count"] > 0
        assert "dsprof:num_requests_waiting" in families
        assert not [n for n in families if n.startswith("DCGM_")]  # no GPU here: absent, not 0
        _, err = watch.communicate(timeout=90)
        assert watch.returncode == 0, err
        (watch_run,) = (tmp_path / "watch-runs").iterdir()
        manifest = read_manifest(watch_run / "run.json")
        assert manifest.kind == "watch" and manifest.status == "ok"
        assert manifest.collectors["nvml"].ok is False  # a note, not an error
        host = pd.read_parquet(watch_run / "metrics" / "host.parquet")
        assert len(host) >= 8 and host["proc_rss_bytes"].min() > 0
        counts = pd.read_parquet(watch_run / "metrics" / "service_requests.parquet")
        assert counts["requests_total"].is_monotonic_increasing
        assert counts["requests_total"].iloc[-1] > counts["requests_total"].iloc[0]
        r = dsprof("report", str(watch_run), "-o", "watch.html", "--cdn", cwd=tmp_path)
        assert r.returncode == 0 and (tmp_path / "watch.html").stat().st_size > 1000, r.stderr

        # two on-demand traces while the load goes on
        captures = []
        for _ in range(2):
            r = dsprof("trace", str(service.pid), "--steps", "3", "--out", "traces", cwd=tmp_path)
            assert r.returncode == 0, r.stdout + r.stderr + service_said()
        runs = sorted((tmp_path / "traces").iterdir())
        assert len(runs) == 2
        for run in runs:
            info = read_capture(run / "capture.json")
            assert info.status == "ok" and info.steps_traced == 3
            captures.append(info)
            steps = pd.read_parquet(run / "metrics" / "steps.parquet")
            assert int(steps["traced"].sum()) == 3 and set(steps["module"]) == {"BertModel"}
            assert list((run / "trace").glob("*.pt.trace.json.gz"))
            assert json.loads((run / "findings.json").read_text())["analyzers_failed"] == {}
            r = dsprof("analyze", str(run), cwd=tmp_path)
            assert r.returncode == 0, r.stderr
        assert service.poll() is None, service_said()
        assert probe(url, timeout_s=5) is None, service_said()  # still answering after the traces

        load.send_signal(signal.SIGINT)  # enough: keep what was sent
        _, load_err = load.communicate(timeout=120)
        (load_run,) = (tmp_path / "load-runs").iterdir()
        requests = pd.read_parquet(load_run / "metrics" / "requests.parquet")
        answered = requests[requests["status"] == 200]
        assert len(answered) >= 10
        # no request failed (a loaded 2-core machine may time some out: slow is not broken)
        failed = requests[(requests["status"] != 200) & (requests["error"] != "timeout")]
        assert failed.empty, failed[["status", "error"]].value_counts()
        for info in captures:  # requests were answered while each window recorded
            assert info.started_ns is not None and info.ended_ns is not None
            inside = answered[
                (answered["done_ns"] >= info.started_ns) & (answered["done_ns"] <= info.ended_ns)
            ]
            assert len(inside) >= 1, (info, load_err)
    finally:
        for proc in (watch, load):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        stop(service)
