"""Real service processes for the live tests (all on this machine, bounded in time)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from dsprof.live import control

ROOT = Path(__file__).parent.parent
LOOP_SERVICE = Path(__file__).parent / "data" / "live" / "loop_service.py"
SERVE_BERT = ROOT / "examples" / "serve_bert.py"


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def dsprof(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "dsprof", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(),
    )


def wait_for_agent(pid: int, proc: subprocess.Popen[bytes], timeout_s: float = 90.0) -> Path:
    """The agent's socket once it answers (the service may take a while to import torch)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = control.find_socket([pid])
        if found is not None:
            return found[1]
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with {proc.returncode} before its agent")
        time.sleep(0.2)
    raise RuntimeError("the service's agent did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def loop_service(
    *args: str,
    agent: bool = True,
    python: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """tests/data/live/loop_service.py (on `python`, this interpreter by default), its agent
    answering (unless --no-agent), else once it prints that it is ready."""
    proc = subprocess.Popen(
        [*(python or [sys.executable]), str(LOOP_SERVICE), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**env(), **(extra_env or {})},
    )
    try:
        if agent:
            wait_for_agent(proc.pid, proc)
        else:
            assert proc.stdout is not None
            while proc.stdout.readline().strip() != b"ready":
                if proc.poll() is not None:
                    raise RuntimeError("the service exited before it was ready")
        yield proc
    finally:
        stop(proc)
