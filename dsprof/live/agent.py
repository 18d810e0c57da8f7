"""The on-demand agent inside a service: `dsprof.serve_on_demand()`, or `dsprof run --on-demand`.

Between captures the agent is one daemon thread blocked in accept() on a Unix socket (see
dsprof.live.control for where it lives and who may connect): it takes no CPU and touches
nothing of the service. Request counters (dsprof.live.requests) are enabled; the DynamicBatcher
and `dsprof.live.record_request` feed them at ~1 us a request.

A connection sends JSON lines and gets one answer per op:
    {"op": "hello", "protocol": 1}   -> pid, versions, busy, captures so far, the service's run
    {"op": "stats"}                  -> the request counters (RequestCounters) or null
    {"op": "capture", "request": {...CaptureRequest}}
                                     -> accepted, then started, then done with the CaptureInfo;
                                        refused at once while another capture runs
Captures run one at a time on the connection's thread (dsprof.live.capture). When the service
exits during one, an atexit handler stops it and waits for the partial capture to be written.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dsprof.core.live import PROTOCOL_VERSION, CaptureRequest
from dsprof.live import control
from dsprof.live import requests as live_requests

# connections handled at once (each on its own short-lived thread); more are refused
MAX_CONNECTIONS = 16
# at exit, how long the service waits for a running capture to write what it recorded
EXIT_WAIT_S = 20.0

AGENT: OnDemandAgent | None = None
_AGENT_LOCK = threading.Lock()


class OnDemandAgent:
    """The control socket's server in this process (see the module docstring)."""

    def __init__(self, service_run: str | None = None) -> None:
        self.pid = os.getpid()
        self.service_run = service_run
        self.started_ns = time.time_ns()
        self.captures = 0
        self.path: Path | None = None
        self._sock: socket.socket | None = None
        self._closed = threading.Event()
        self._capture_lock = threading.Lock()
        self._capture: Any = None
        self._capture_done = threading.Event()
        self._capture_done.set()
        self._connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._thread: threading.Thread | None = None

    def start(self) -> Path:
        """Warm up the profiler on this thread, bind the socket, start listening."""
        from dsprof.live.profiler_setup import warm_up_profiler

        warm_up_profiler()
        live_requests.enable()
        self._sock, self.path = control.bind_socket(self.pid)
        self._thread = threading.Thread(target=self._accept_loop, name="dsprof-agent", daemon=True)
        self._thread.start()
        atexit.register(self.close)
        os.register_at_fork(after_in_child=self._after_fork_in_child)
        return self.path

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Stop listening and remove the socket; a running capture ends, kept as partial."""
        if os.getpid() != self.pid or self._closed.is_set():
            return
        self._closed.set()
        capture = self._capture
        if capture is not None:
            capture.stop("the service exited during the capture")
            self._capture_done.wait(EXIT_WAIT_S)
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def _after_fork_in_child(self) -> None:
        # a forked worker inherits the listening socket but not the thread: close its copy;
        # the parent keeps serving and owns the socket file
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._closed.set()

    # -- serving ------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            sock = self._sock
            if sock is None:
                return
            try:
                conn, _ = sock.accept()
            except OSError:
                if self._closed.is_set():
                    return
                time.sleep(0.1)  # EMFILE and friends: do not spin
                continue
            creds = control.peer_credentials(conn)
            if creds is not None and creds[1] != os.getuid():
                conn.close()  # the 0600 socket already keeps others out; root is refused too
                continue
            if not self._connections.acquire(blocking=False):
                with contextlib.suppress(OSError):
                    conn.sendall(b'{"ok": false, "error": "too many connections"}\n')
                conn.close()
                continue
            threading.Thread(
                target=self._serve_connection, args=(conn,), name="dsprof-agent-conn", daemon=True
            ).start()

    def _serve_connection(self, conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rwb") as stream:
                while not self._closed.is_set():
                    line = stream.readline(control.MAX_LINE_BYTES)
                    if not line:
                        return
                    for answer in self._answer(line):
                        stream.write(_encode(answer))
                        stream.flush()
        except (OSError, ValueError):
            return  # the client went away; a capture it asked for still completes
        finally:
            self._connections.release()

    def _answer(self, line: bytes) -> Any:
        import json

        try:
            message = json.loads(line)
            op = message.get("op")
        except (ValueError, AttributeError):
            yield {"ok": False, "error": "not a JSON object"}
            return
        if op == "hello":
            yield self._hello()
        elif op == "stats":
            stats = live_requests.STATS
            counters = stats.snapshot().model_dump() if stats is not None else None
            yield {"ok": True, "counters": counters}
        elif op == "capture":
            yield from self._capture_op(message.get("request") or {})
        else:
            yield {"ok": False, "error": f"unknown op {op!r}"}

    def _hello(self) -> dict[str, Any]:
        import torch

        from dsprof import __version__
        from dsprof.live.profiler_setup import all_threads_config

        return {
            "ok": True,
            "protocol": PROTOCOL_VERSION,
            "pid": self.pid,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "dsprof": __version__,
            "busy": self._capture is not None,
            "captures": self.captures,
            "service_run": self.service_run,
            "started_ns": self.started_ns,
            "all_threads": all_threads_config() is not None,
            "argv": list(sys.argv),
            "cwd": os.getcwd(),
            "facts": process_facts(),
        }

    def _capture_op(self, raw: dict[str, Any]) -> Any:
        from dsprof.live.capture import OnDemandCapture

        try:
            request = CaptureRequest.model_validate(raw)
        except ValidationError as e:
            yield {"ok": False, "error": f"bad capture request: {e.errors()[0]['msg']}"}
            return
        if not self._capture_lock.acquire(blocking=False):
            running = self._capture
            since = (
                f" for {(time.time_ns() - running.info.requested_ns) / 1e9:.1f} s"
                if running is not None and running.info.requested_ns
                else ""
            )
            yield {
                "ok": False,
                "busy": True,
                "error": f"a capture is already running{since}; one at a time, try again when "
                "it ends",
            }
            return
        # from here the capture's own thread owns the lock: it releases it when the capture
        # has ended, even if this connection goes away first (a client killed mid-window)
        try:
            capture = OnDemandCapture(request, self.service_run)
            self._capture = capture
            self._capture_done.clear()
            done = threading.Event()
            result: list[Any] = []

            def work() -> None:
                try:
                    result.append(capture.run())
                finally:
                    self.captures += 1
                    self._capture = None
                    self._capture_done.set()
                    self._capture_lock.release()
                    done.set()

            threading.Thread(target=work, name="dsprof-capture", daemon=True).start()
        except BaseException:
            self._capture = None
            self._capture_done.set()
            self._capture_lock.release()
            raise
        yield {"ok": True, "event": "accepted"}
        # "started" as soon as the profiler records (the client prints it)
        while not capture.started.wait(0.05) and not done.is_set():
            pass
        if capture.info.started_ns is not None:
            yield {"ok": True, "event": "started", "started_ns": capture.info.started_ns}
        done.wait()
        info = result[0] if result else capture.info
        yield {"ok": True, "event": "done", "capture": info.model_dump()}


def process_facts() -> dict[str, Any]:
    """What the service's torch and CPUs look like (child.json fields of a watch run)."""
    import torch

    from dsprof.runner.child import cpu_facts

    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": bool(torch.cuda.is_available()),
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        **cpu_facts(),
    }


def _encode(message: dict[str, Any]) -> bytes:
    import json

    return json.dumps(message).encode() + b"\n"


def serve_on_demand(service_run: str | None = None) -> Path:
    """Let `dsprof trace PID` take profiler windows of this process (idempotent).

    Starts the agent: one daemon thread on a user-only Unix socket (no TCP). Call it once at
    start-up, on the main thread (it initialises torch.profiler there). Returns the socket path.
    """
    global AGENT
    with _AGENT_LOCK:
        if AGENT is not None and AGENT.pid == os.getpid() and not AGENT._closed.is_set():
            assert AGENT.path is not None
            return AGENT.path
        agent = OnDemandAgent(service_run)
        path = agent.start()
        AGENT = agent
        return path
