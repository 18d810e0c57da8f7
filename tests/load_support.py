"""A real uvicorn service on 127.0.0.1 for the load tests (tests/data/load/stall_app.py)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from dsprof.load.service import free_port, probe

STALL_APP = Path(__file__).parent / "data" / "load" / "stall_app.py"


@contextlib.contextmanager
def stall_app(*args: str) -> Iterator[str]:
    """Start the app with these options; yield its /work URL; stop it after."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(STALL_APP), "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/work"
    try:
        deadline = time.monotonic() + 30
        while probe(url, timeout_s=0.5) is not None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stall_app did not start: {proc.stderr.read().decode()}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
