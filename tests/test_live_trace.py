"""On-demand traces of a real running service (tests/data/live/loop_service.py): the run folder,
--duration, one capture at a time, a service that exits or is killed mid-capture, a process
that did not opt in, and 20 captures in a row."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import psutil
import pytest
from live_support import LOOP_SERVICE, dsprof, env, loop_service, stop

from dsprof.core.live import CaptureRequest
from dsprof.live import control
from dsprof.live.target import tree_pids
from dsprof.live.trace import TraceRequest, take_trace
from dsprof.store.documents import read_capture, read_manifest
from dsprof.trace import load_trace


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """One opted-in service for the tests that leave it running (svc.pause: a file that stops
    its model calls while it exists)."""
    pause = tmp_path_factory.mktemp("loop") / "pause"
    with loop_service("--exit-after", "400", "--pause-file", str(pause)) as svc:
        svc.pause = pause  # type: ignore[attr-defined]
        yield svc


def _wait_for(cond, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _in_background(req: TraceRequest) -> tuple[threading.Thread, list, list[str]]:
    """take_trace on a thread: (the thread, [its result], the progress lines said so far)."""
    results: list = []
    said: list[str] = []
    t = threading.Thread(target=lambda: results.append(take_trace(req, said.append)), daemon=True)
    t.start()
    return t, results, said


def test_a_trace_of_steps_is_an_analysed_run_folder(tmp_path, service):
    svc = service
    result = take_trace(TraceRequest(pid=svc.pid, steps=3, out=tmp_path / "runs"))
    assert svc.poll() is None, "the service keeps running"
    info = result.capture
    assert info.status == "ok" and info.steps_traced == 3, info
    paths = result.paths
    manifest = read_manifest(paths.manifest)
    assert manifest.kind == "trace" and manifest.status == "ok"
    assert manifest.options["pid"] == svc.pid
    (trace_file,) = paths.trace_files()
    assert trace_file.name.endswith(".pt.trace.json.gz") and trace_file.name == info.trace_file
    frames = load_trace(trace_file)
    assert len(frames.steps) == 3  # ProfilerStep#0..2, one per traced model call
    ops = frames.cpu["name"].astype(str)
    assert (ops == "aten::linear").sum() >= 6  # the model ran on its worker thread: recorded
    steps = pd.read_parquet(paths.steps)
    assert int(steps["traced"].sum()) == 3 and set(steps["module"]) == {"Sequential"}
    assert read_capture(paths.capture).started_ns is not None
    assert json.loads(paths.findings.read_text())["schema_version"] == 1
    assert paths.host.is_file()
    child = json.loads(paths.child_info.read_text())
    assert child["profiler"]["trace_file"] == trace_file.name
    r = dsprof("analyze", str(paths.root), cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_a_trace_while_four_threads_call_the_model_at_once(tmp_path):
    """A thread pool serving one model: the window records, counts and ends; nothing breaks."""
    with loop_service("--threads", "4", "--interval-ms", "1") as svc:
        results = [  # 4 steps take well under a second; the timeout only bounds a failure
            take_trace(
                TraceRequest(pid=svc.pid, steps=4, timeout_s=30, out=tmp_path, analyze=False)
            )
            for _ in range(3)
        ]
        assert svc.poll() is None
        with control.connect(*control.find_socket([svc.pid])) as conn:  # type: ignore[misc]
            assert conn.hello()["captures"] == 3
    for result in results:
        # at least 4: calls on other threads may end before the recording stops
        assert result.capture.status == "ok" and result.capture.steps_traced >= 4, result.capture
        steps = pd.read_parquet(result.paths.steps)
        assert set(steps.loc[steps["traced"], "module"]) == {"Sequential"}  # not a layer of it
        frames = load_trace(result.paths.trace_files()[0])
        assert len(frames.steps) >= 4
        threads = frames.cpu.loc[frames.cpu["name"].astype(str) == "aten::linear", "tid"].nunique()
        assert threads >= 2, "the pool's threads are all recorded"


@pytest.mark.slow
def test_a_service_started_with_dsprof_run_on_demand(tmp_path):
    """No opt-in line: `dsprof run --on-demand` runs the agent in its child; the PID of dsprof
    run itself is enough, and the run's own steps and folder go on undisturbed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsprof", "run", "--on-demand", "-q", "--out", "service-runs",
         str(LOOP_SERVICE), "--no-agent", "--exit-after", "25"],
        cwd=tmp_path, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while control.find_socket(tree_pids(proc.pid)) is None:
            assert proc.poll() is None and time.monotonic() < deadline, "no agent in the child"
            time.sleep(0.2)
        result = take_trace(TraceRequest(pid=proc.pid, steps=3, out=tmp_path / "traces"))
        assert proc.wait(60) == 0
    finally:
        stop(proc)
    info = result.capture
    assert info.status == "ok" and info.steps_traced >= 3
    (service_run,) = (tmp_path / "service-runs").iterdir()
    assert info.service_run == str(service_run.resolve())
    manifest = read_manifest(service_run / "run.json")
    assert manifest.status == "ok" and manifest.options["on_demand"] is True
    assert manifest.collectors["torch_profiler"].ok is False  # no start-up window
    assert manifest.summary.count > 50  # the run's own steps went on through the window
    assert result.paths.trace_files()
    # every model call of the window was seen (none skipped by a tracker that notifies sparsely)
    steps = pd.read_parquet(result.paths.steps)
    traced = sorted(steps.loc[steps["traced"], "step"])
    assert traced == list(range(traced[0], traced[0] + len(traced))), traced


def test_a_trace_for_a_duration(tmp_path, service):
    svc = service
    result = take_trace(TraceRequest(pid=svc.pid, duration_s=1.0, out=tmp_path))
    info = result.capture
    assert info.status == "ok" and info.mode == "duration" and info.steps_traced >= 1
    assert info.started_ns is not None and info.ended_ns is not None
    # the window is at least the duration; its end includes the profiler's stop, slow on a
    # loaded machine: the upper bound only says it did not run to the timeout
    assert 0.9 <= (info.ended_ns - info.started_ns) / 1e9 < 30
    assert len(load_trace(result.paths.trace_files()[0]).steps) >= 1


def test_a_second_capture_while_one_runs_is_refused(tmp_path, service):
    svc = service
    svc.pause.touch()  # no model calls: the first capture waits for its steps, however long
    try:
        t, first, _ = _in_background(
            TraceRequest(pid=svc.pid, steps=2, timeout_s=120, out=tmp_path / "a")
        )
        found = control.find_socket([svc.pid])
        assert found is not None
        with control.connect(*found) as conn:
            _wait_for(lambda: conn.hello()["busy"], 30, "the first capture to start")
        r = dsprof("trace", str(svc.pid), "--steps", "2", "--out", "b", cwd=tmp_path)
    finally:
        svc.pause.unlink()
    t.join(120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "already" in r.stderr and "one at a time" in r.stderr
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").iterdir())
    assert first and first[0].capture.status == "ok"


def test_a_client_that_goes_away_mid_window_does_not_wedge_the_agent(tmp_path, service):
    """The window it asked for completes and is written; the next capture is accepted."""
    abandoned = tmp_path / "abandoned"
    abandoned.mkdir()
    svc = service
    found = control.find_socket([svc.pid])
    assert found is not None
    conn = control.AgentConnection.open(found[1], found[0])
    request = CaptureRequest(run_dir=str(abandoned.resolve()), duration_s=1.5)
    conn.send({"op": "capture", "request": request.model_dump()})
    assert conn.receive(10)["event"] == "accepted"
    conn.close()  # the client is gone before the window ends
    deadline = time.monotonic() + 30
    while True:
        with control.connect(*found) as probe:
            if not probe.hello()["busy"]:
                break
        assert time.monotonic() < deadline, "the agent stayed busy"
        time.sleep(0.1)
    result = take_trace(TraceRequest(pid=svc.pid, steps=2, out=tmp_path / "next"))
    assert read_capture(abandoned / "capture.json").status == "ok"
    assert result.capture.status == "ok"


def test_a_process_that_did_not_opt_in_gets_a_clear_message(tmp_path):
    with loop_service("--no-agent", agent=False) as svc:
        r = dsprof("trace", str(svc.pid), cwd=tmp_path)
        inject = dsprof("trace", str(svc.pid), "--inject", "--yes", cwd=tmp_path)
    if sys.version_info < (3, 14):  # no sys.remote_exec: --inject says why, changes nothing
        assert inject.returncode == 2 and "sys.remote_exec" in inject.stderr, inject.stderr
    assert r.returncode == 2
    assert f"PID {svc.pid} (loop_service) does not accept on-demand traces" in r.stderr
    assert "dsprof.serve_on_demand()" in r.stderr and "dsprof run --on-demand" in r.stderr
    assert "sys.remote_exec" in r.stderr
    assert not (tmp_path / ".dsprof").exists()


def test_no_such_process(tmp_path):
    r = dsprof("trace", "999999999", cwd=tmp_path)
    assert r.returncode == 2 and "no process with PID 999999999" in r.stderr


def test_a_service_that_exits_during_the_capture_keeps_it_marked_partial(tmp_path):
    exit_file = tmp_path / "exit"
    with loop_service("--exit-file", str(exit_file)) as svc:
        t, results, said = _in_background(
            TraceRequest(pid=svc.pid, steps=100_000, timeout_s=120, out=tmp_path / "runs")
        )
        _wait_for(lambda: any(s.startswith("recording") for s in said), 60, "the window")
        time.sleep(0.5)
        exit_file.touch()  # a normal exit in the middle of the window
        svc.wait(60)
        t.join(120)
    (result,) = results
    info = result.capture
    assert info.status == "partial" and "exited during the capture" in (info.reason or "")
    assert info.steps_traced > 0
    manifest = read_manifest(result.paths.manifest)
    assert manifest.status == "interrupted" and "partial" in (manifest.error or "")
    (trace_file,) = result.paths.trace_files()  # exported at exit: what was recorded is kept
    assert len(load_trace(trace_file).steps) > 0
    assert result.paths.steps.is_file()


def test_a_service_killed_during_the_capture_keeps_what_was_collected(tmp_path):
    with loop_service() as svc:
        t, results, _ = _in_background(TraceRequest(pid=svc.pid, duration_s=60.0, out=tmp_path))
        # killed once the window has written steps (every 0.5 s), however slow the machine
        _wait_for(lambda: list(tmp_path.glob("*/metrics/steps.jsonl")), 60, "steps written")
        svc.send_signal(signal.SIGKILL)
        t.join(120)
    (result,) = results
    info = result.capture
    assert info.status == "partial" and "killed" in (info.reason or "")
    manifest = read_manifest(result.paths.manifest)
    assert manifest.status == "interrupted" and "killed" in (manifest.error or "")
    assert result.paths.host.is_file()  # sampled from outside: kept
    assert result.paths.steps.is_file()  # written by the agent every 0.5 s
    assert result.paths.trace_files() == []


@pytest.mark.slow
def test_twenty_captures_leave_the_service_healthy(tmp_path):
    with loop_service("--interval-ms", "2") as svc:
        proc = psutil.Process(svc.pid)
        for _ in range(2):  # the first captures load what stays loaded (torch.profiler, pandas)
            take_trace(TraceRequest(pid=svc.pid, steps=2, out=tmp_path, analyze=False))
        threads0, rss0 = proc.num_threads(), proc.memory_info().rss
        for i in range(20):
            result = take_trace(TraceRequest(pid=svc.pid, steps=2, out=tmp_path, analyze=False))
            assert result.capture.status == "ok", (i, result.capture)
        # the last capture's threads end soon after its answer (later on a loaded machine)
        deadline = time.monotonic() + 30
        while proc.num_threads() > threads0 and time.monotonic() < deadline:
            time.sleep(0.1)
        threads1, rss1 = proc.num_threads(), proc.memory_info().rss
        assert svc.poll() is None
    assert threads1 <= threads0, (threads0, threads1)
    assert rss1 - rss0 < 64 * 2**20, (rss0, rss1)


@pytest.mark.slow  # two services start: ~45 s on the loaded 2-core machine
def test_a_pid_with_several_agents_below_it_is_refused_not_guessed(tmp_path):
    """`dsprof trace PID` looks below PID (for `dsprof run --on-demand`); a shell or supervisor
    with two opted-in services under it names them instead of tracing either."""
    quoted = f"{sys.executable} {LOOP_SERVICE} --exit-after 120"
    parent = subprocess.Popen(
        ["sh", "-c", f"{quoted} & {quoted} & wait"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len(control.find_sockets(tree_pids(parent.pid))) < 2:
            assert parent.poll() is None and time.monotonic() < deadline, "two agents"
            time.sleep(0.2)
        children = sorted(p for p, _ in control.find_sockets(tree_pids(parent.pid)))
        r = dsprof("trace", str(parent.pid), "--steps", "1", "--out", "runs", cwd=tmp_path)
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"2 processes under PID {parent.pid} accept on-demand traces" in r.stderr
        assert f"PIDs {children[0]}, {children[1]}" in r.stderr
        assert not (tmp_path / "runs").exists()
    finally:
        for pid in tree_pids(parent.pid)[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        stop(parent)
