"""The service side of a load run: start it under `dsprof run`, wait until it answers, stop it.

`--server "CMD"` runs CMD's Python script (or -m module, or a console script such as uvicorn)
under `dsprof run` in its own session, so a Ctrl-C at the terminal reaches dsprof load alone,
which then stops the service in order. Its trace window is held until dsprof load writes the
hold file in the middle of the load.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dsprof.core.errors import UsageError
from dsprof.store.layout import RunPaths

READY_POLL_S = 0.2
# how long the service gets to shut down after SIGINT (dsprof run forwards it after 1 s), and
# after SIGTERM, before it is killed
STOP_GRACE_S = 30.0
KILL_AFTER_S = 10.0
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


class ServiceError(UsageError):
    """The service could not be reached or started: said before any load is sent."""


def server_argv(command: str) -> list[str]:
    """`dsprof run` arguments for a server command line: script [args] or -m module [args]."""
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise UsageError(f"--server {command!r}: {e}") from None
    if not argv:
        raise UsageError('--server needs a command, like "python serve.py"')
    exe = Path(argv[0]).name
    if exe.startswith("python") or argv[0] == sys.executable:
        rest = argv[1:]
        if rest[:1] == ["-m"] and len(rest) > 1:
            return ["-m", *rest[1:]]
        if not rest:
            raise UsageError(f"--server {command!r}: which script should python run?")
        return rest
    found = shutil.which(argv[0])
    if found is None:
        raise UsageError(
            f"--server {command!r}: {argv[0]!r} is not a Python script or a command on the PATH"
        )
    return [found, *argv[1:]]  # a console script is a Python file: dsprof run takes it


def probe(url: str, timeout_s: float = 2.0) -> str | None:
    """None when the URL answers HTTP at all (any status); else why not, in words."""
    req = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s):
            return None
    except urllib.error.HTTPError:
        return None  # 404/405/500: something answers HTTP there
    except urllib.error.URLError as e:
        return str(e.reason)
    except (OSError, ValueError) as e:
        return str(e)


def check_url(url: str) -> None:
    """A URL dsprof load can send to: http(s)://host:port/path."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{url!r} is not an http:// URL (or a path/to/file.py:function handler)")


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for the handler server)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """A service started under `dsprof run` into a run folder."""

    proc: subprocess.Popen[bytes]
    paths: RunPaths
    launch_log: Path
    stopped_by_us: bool = False

    @classmethod
    def start(
        cls,
        run_args: list[str],
        paths: RunPaths,
        *,
        trace_steps: tuple[int, int] | None,
        sample_hz: float,
        env: dict[str, str] | None = None,
    ) -> Service:
        """Start `dsprof run` on run_args, writing exactly into paths.root (which must not exist)."""
        argv = [
            sys.executable, "-m", "dsprof", "run", "--quiet", "--run-dir", str(paths.root),
            "--sample-hz", str(sample_hz),
        ]  # fmt: skip
        if trace_steps is None:
            argv.append("--no-trace")
        else:
            argv += ["--steps", f"{trace_steps[0]}:{trace_steps[1]}"]
            argv += ["--trace-hold-file", str(paths.trace_hold)]
        launch_log = paths.launch_log
        with open(launch_log, "wb") as log:
            proc = subprocess.Popen(
                [*argv, "--", *run_args] if run_args[0] != "-m" else [*argv, *run_args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        return cls(proc, paths, launch_log)

    def exited(self) -> str | None:
        """Why the service is gone (None while it runs)."""
        code = self.proc.poll()
        if code is None:
            return None
        return f"the server exited with code {code} ({self.tail()})"

    def tail(self, lines: int = 5) -> str:
        """The last lines the service (or dsprof run) wrote on stderr, for an error message."""
        text = ""
        for p in (self.paths.stderr_log, self.launch_log):
            with contextlib.suppress(OSError):
                text = p.read_text(encoding="utf-8", errors="replace").strip() or text
            if text:
                break
        last = [ln for ln in text.splitlines() if ln.strip()][-lines:]
        return " | ".join(last) if last else "it printed nothing"

    def wait_ready(self, url: str, timeout_s: float) -> float:
        """Poll until the URL answers; seconds it took. ServiceError when it never does."""
        t0 = time.monotonic()
        last = "no answer yet"
        while time.monotonic() - t0 < timeout_s:
            if (why := self.exited()) is not None:
                raise ServiceError(f"{why}; it never answered at {url}")
            problem = probe(url, timeout_s=1.0)
            if problem is None:
                return time.monotonic() - t0
            last = problem
            time.sleep(READY_POLL_S)
        self.stop()
        raise ServiceError(
            f"the server did not answer at {url} within {timeout_s:g} s ({last}); "
            f"its last words: {self.tail()} (raise --ready-timeout if it loads slowly)"
        )

    def open_trace_window(self) -> None:
        """Write the hold file: the service's trace window starts at its next step."""
        with contextlib.suppress(OSError):
            self.paths.trace_hold.write_text(str(time.time_ns()), encoding="utf-8")

    def stop(self) -> int:
        """SIGINT to `dsprof run` (it forwards to the service), then SIGTERM, then SIGKILL."""
        if self.proc.poll() is None:
            self.stopped_by_us = True
            for sig, wait_s in (
                (signal.SIGINT, STOP_GRACE_S),
                (signal.SIGTERM, KILL_AFTER_S),
                (signal.SIGKILL, KILL_AFTER_S),
            ):
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(sig)
                try:
                    self.proc.wait(wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        code = self.proc.wait()
        with contextlib.suppress(OSError):
            self.launch_log.unlink()
        return code
