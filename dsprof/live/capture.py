"""One on-demand capture inside the running service: a torch.profiler window over its next steps.

Runs on the agent's connection thread while the service keeps serving on its own threads:

1. steps: the process's StepTracker when it runs under `dsprof run --on-demand`, else a new one
   installed for the window and removed after (its global pre-hook finds the model as it is
   called, on whatever thread). Each model call that starts while recording is wrapped in a
   `ProfilerStep#N` range on its own thread, as torch's schedule names steps.
2. torch.profiler records every thread (profile_all_threads: the model runs on a worker thread,
   not on the thread that starts the profiler). Only this thread starts and stops it: one owner,
   so concurrent model calls never touch the profiler's state. Kineto was initialised on the main
   thread when the agent started (starting it first on another thread stalls for seconds).
3. It stops after N steps that began inside the recording have ended, after the duration, at
   the timeout (partial), or when the service exits (partial: atexit asks it to stop).
4. The trace is exported as plain JSON (the gzip is done by dsprof trace, in its own process,
   not on the service's GIL); steps, child.json and capture.json are written; malloc_trim(0)
   hands the heap the profiler fragmented back to the OS.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dsprof.core.child import ChildInfo, ProfilerInfo
from dsprof.core.live import CaptureInfo, CaptureRequest
from dsprof.live.profiler_setup import all_threads_config
from dsprof.store import live_steps
from dsprof.store.documents import write_model
from dsprof.store.layout import RunPaths, trace_file_name

# how often the capture thread looks at its stop conditions while it waits
POLL_S = 0.05
# root calls of one module object before its class is taken as the model's (see _StepWatch)
MODEL_CALLS = 2
# a dsprof.step() marker step, in _StepWatch's counts
MARKER = "<marker>"
# --duration captures wait at most this long to know the model before recording anyway
DURATION_MODEL_WAIT_S = 1.0
# how often the steps seen so far are written out (a service killed mid-capture keeps them)
STEPS_FLUSH_S = 0.5


class _StepWatch:
    """The capture's steps: a tracker listener and a call context, run on the model's threads.

    Which calls are the model's: a tracker installed while a model call is in flight turns that
    call's remaining layers into roots of one call each (each looks outermost, and several may
    share a class), so before recording the capture waits until one module object has been
    called as a root MODEL_CALLS times on one thread and takes its class as the model's (a
    dsprof.step() marker step counts as the model's). On one thread, not in all: with several
    threads mid-call at the install, the same layer is a root once on each of them (counted
    together, 4 threads made a Linear "the model", whose calls were never roots again: the
    window then recorded until its timeout, 60 s of every thread's ops).
    """

    def __init__(self, model: str | None) -> None:
        self.rows: list[dict[str, Any]] = []
        self.model = model
        self.calls: dict[tuple[int, int], int] = {}
        self.recording_since_ns: int | None = None
        self.recording_until_ns: int | None = None
        # when the Nth step ended: calls that start after it are not wrapped as steps (the
        # profiler stops a moment later; on a loaded machine a single thread could otherwise
        # begin one more call in between, a step N+1 cut by the stop)
        self.closed_ns: int | None = None
        self.traced = 0
        self.wanted: int | None = None
        self.model_known = threading.Event()
        if model is not None:
            self.model_known.set()
        self.enough = threading.Event()
        self._lock = threading.Lock()
        self._numbers = iter(range(1 << 62))

    def listener(self, record: Any, output: Any, inputs: Any) -> None:
        row = step_row(record)
        key = MARKER if row.get("source") == "marker" else str(row.get("module", ""))
        since, until, closed = self.recording_since_ns, self.recording_until_ns, self.closed_ns
        inside = since is not None and row["start_ns"] >= since
        inside = inside and (until is None or row["end_ns"] <= until)
        inside = inside and (closed is None or row["start_ns"] < closed)
        with self._lock:
            if self.model is None and key == MARKER:
                self.model = key
                self.model_known.set()
            inside = inside and key == self.model
            row["traced"] = inside
            row["_key"] = key
            self.rows.append(row)
            if inside:
                self.traced += 1
                if self.wanted is not None and self.traced >= self.wanted:
                    if self.closed_ns is None:
                        self.closed_ns = time.time_ns()
                    self.enough.set()

    def call_context(self, module: Any) -> contextlib.AbstractContextManager[Any]:
        if self.model is None:
            key = (threading.get_ident(), id(module))
            with self._lock:
                self.calls[key] = n = self.calls.get(key, 0) + 1
                if n >= MODEL_CALLS and self.model is None:
                    self.model = type(module).__name__
                    self.model_known.set()
        if (
            self.recording_since_ns is None
            or self.recording_until_ns is not None
            or self.closed_ns is not None
            or type(module).__name__ != self.model
        ):
            return contextlib.nullcontext()
        from torch.profiler import record_function

        return record_function(f"ProfilerStep#{next(self._numbers)}")


def step_row(row: Any) -> dict[str, Any]:
    """A tracker's step row (a tuple in live_steps' field order) as a dict."""
    return dict(zip(live_steps.STEP_FIELDS, row, strict=True))


def roots_info(tracker: Any) -> list[dict[str, Any]]:
    """The tracker's root modules for child.json."""
    return [r.info() for r in tracker.roots] if tracker is not None else []


def known_model(tracker: Any) -> str | None:
    """The model's class when the tracker already knows it (a service under dsprof run)."""
    model = tracker.model
    return str(model.cls) if model is not None and model.steps >= MODEL_CALLS else None


class OnDemandCapture:
    """Takes one capture into request.run_dir (see the module docstring)."""

    def __init__(self, request: CaptureRequest, service_run: str | None = None) -> None:
        self.request = request
        self.paths = RunPaths(Path(request.run_dir))
        self.service_run = service_run
        self.stop_reason: str | None = None
        self._stop = threading.Event()
        self.started = threading.Event()
        self._written = 0
        self.info = CaptureInfo(
            pid=os.getpid(),
            mode="steps" if request.duration_s is None else "duration",
            steps_wanted=request.steps if request.duration_s is None else None,
            duration_s=request.duration_s,
            requested_ns=request.requested_ns,
            record_shapes=request.record_shapes,
            service_run=service_run,
        )

    def stop(self, reason: str) -> None:
        """End the window early (the service is exiting); what was recorded is kept."""
        self.stop_reason = reason
        self._stop.set()

    def run(self) -> CaptureInfo:
        """Record, export, write the documents; never raises into the service."""
        from dsprof.runner import steps

        info = self.info
        tracker = steps.TRACKER
        owned = tracker is None
        watch = _StepWatch(None if owned else known_model(tracker))
        try:
            self._check_folder()
            if owned:
                tracker = steps.StepTracker()
                tracker.install()
                tracker.start_clock()
                steps.TRACKER = tracker
            assert tracker is not None
            # copies, not in-place appends: the model thread may be iterating these lists now
            tracker.listeners = [*tracker.listeners, watch.listener]
            tracker.call_contexts = [*tracker.call_contexts, watch.call_context]
            try:
                self._record(watch)
            finally:
                tracker.listeners = [f for f in tracker.listeners if f is not watch.listener]
                tracker.call_contexts = [
                    f for f in tracker.call_contexts if f is not watch.call_context
                ]
                if owned:
                    tracker.uninstall()
                    if steps.TRACKER is tracker:
                        steps.TRACKER = None
        except Exception as e:  # the service must keep serving whatever happens here
            info.status, info.reason = "failed", f"{type(e).__name__}: {e}"
        self._write(watch, tracker if owned else steps.TRACKER)
        return info

    def _check_folder(self) -> None:
        root = self.paths.root
        if not root.is_absolute() or not root.is_dir() or root.is_symlink():
            raise ValueError(f"{root} is not an existing run folder (absolute path, not a link)")
        if root.stat().st_uid != os.getuid():
            raise ValueError(f"{root} does not belong to this process's user")
        self.paths.make_dirs()

    def _record(self, watch: _StepWatch) -> None:
        import torch
        from torch.profiler import ProfilerActivity, profile

        from dsprof.collectors.torch_profiler import _malloc_trim

        req, info = self.request, self.info
        cuda = bool(torch.cuda.is_available())
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        config = all_threads_config()
        if config is None:
            raise RuntimeError(
                f"torch {torch.__version__} lacks profile_all_threads: an on-demand window "
                "could record only the agent's own thread (torch >= 2.6 has it)"
            )
        prof = profile(
            activities=activities,
            record_shapes=req.record_shapes,
            profile_memory=cuda,
            experimental_config=config,
        )
        if torch.autograd.profiler._is_profiler_enabled:
            raise RuntimeError(
                "another torch.profiler session is recording in this process (the start-up "
                "window of dsprof run, or the service's own); try again when it ends"
            )
        watch.wanted = req.steps if req.duration_s is None else None
        t0 = time.monotonic()
        wait_s = DURATION_MODEL_WAIT_S if req.duration_s is not None else req.timeout_s
        while not watch.model_known.wait(POLL_S) and not self._stop.is_set():
            if time.monotonic() - t0 > wait_s:
                break
        if req.duration_s is None and not watch.model_known.is_set():
            self.started.set()
            info.status = "failed"
            info.reason = (
                f"no model call was seen in {req.timeout_s:g} s: is the service receiving "
                "requests? (nothing was recorded)"
            )
            return
        prof.start()
        watch.recording_since_ns = info.started_ns = time.time_ns()
        self.started.set()
        try:
            self._wait(watch, req.timeout_s - (time.monotonic() - t0))
        finally:
            watch.recording_until_ns = time.time_ns()
            prof.stop()
            info.ended_ns = time.time_ns()
        info.steps_traced = watch.traced
        self._judge(watch)
        name = trace_file_name(socket.gethostname(), os.getpid(), gz=False)
        prof.export_chrome_trace(str(self.paths.trace_dir / name))
        info.trace_file = name
        del prof  # the profiler's event buffers go before the heap is trimmed
        info.malloc_trim_after_trace = _malloc_trim()

    def _wait(self, watch: _StepWatch, steps_time_left_s: float) -> None:
        req = self.request
        t0 = time.monotonic()
        next_flush = t0 + STEPS_FLUSH_S
        limit = req.duration_s if req.duration_s is not None else steps_time_left_s
        while not self._stop.is_set():
            now = time.monotonic()
            left = limit - (now - t0)
            if left <= 0:
                break
            if now >= next_flush:
                self._flush_steps(watch)
                next_flush = now + STEPS_FLUSH_S
            if watch.enough.wait(min(POLL_S, left)):
                break

    def _flush_steps(self, watch: _StepWatch) -> None:
        """Append the model's steps not yet written to steps.jsonl (once the model is known:
        the layers caught mid-call when the tracker was installed are not steps)."""
        model = watch.model
        rows = watch.rows[self._written :]
        if model is None or not rows:
            return
        lines = [
            json.dumps({k: v for k, v in r.items() if k != "_key"}) + "\n"
            for r in rows
            if r["_key"] == model
        ]
        with open(self.paths.steps_live, "a", encoding="utf-8") as f:
            f.write("".join(lines))
        self._written += len(rows)

    def _judge(self, watch: _StepWatch) -> None:
        req, info = self.request, self.info
        if self.stop_reason is not None:
            info.status = "partial"
            info.reason = f"{self.stop_reason} ({watch.traced} steps traced)"
        elif req.duration_s is None and watch.traced < (req.steps or 0):
            info.status = "partial"
            info.reason = (
                f"only {watch.traced} of {req.steps} steps in {req.timeout_s:g} s: is the service "
                "receiving requests? (try --duration, or send load while tracing)"
            )

    def _write(self, watch: _StepWatch, tracker: Any) -> None:
        """steps.jsonl, child.json and capture.json; failures become the capture's reason."""
        info = self.info
        try:
            self._flush_steps(watch)
            write_model(self.paths.child_info, self._child_info(tracker, watch), lenient=True)
        except Exception as e:
            if info.status == "ok":
                info.status, info.reason = "partial", f"writing the run folder failed: {e!r}"
        with contextlib.suppress(Exception):
            write_model(self.paths.capture, info)

    def _child_info(self, tracker: Any, watch: _StepWatch) -> ChildInfo:
        import torch

        from dsprof.runner.child import cpu_facts

        info = self.info
        roots = roots_info(tracker)
        status = {"ok": "ok", "partial": "interrupted", "failed": "failed"}[info.status]
        return ChildInfo.model_validate(
            {
                "status": status,
                "exit_code": 0 if info.status == "ok" else 1,
                "error": info.reason,
                "end_ns": info.ended_ns or time.time_ns(),
                "torch": torch.__version__,
                "cuda": torch.version.cuda,
                "cuda_available": bool(torch.cuda.is_available()),
                "torch_num_threads": torch.get_num_threads(),
                "torch_num_interop_threads": torch.get_num_interop_threads(),
                "steps_seen": sum(1 for r in watch.rows if r["_key"] == watch.model),
                "step_mode": getattr(tracker, "mode", None),
                "root_modules": roots,
                "root_inputs": {r["qualname"]: r["inputs"] for r in roots},
                **cpu_facts(),
                "profiler": ProfilerInfo(
                    activities=["CPU", *(["CUDA"] if torch.cuda.is_available() else [])],
                    wait=0,
                    active=info.steps_wanted or 0,
                    record_shapes=info.record_shapes,
                    profile_memory=bool(torch.cuda.is_available()),
                    trace_file=info.trace_file,
                    error=info.reason if info.status == "failed" else None,
                    malloc_trim_after_trace=info.malloc_trim_after_trace,
                ),
                "python": sys.version.split()[0],
            }
        )
