"""A background thread that calls a sample function at a fixed rate and keeps the rows."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

SAMPLER_NICE = 10


class PeriodicSampler:
    """Samples at `hz` on its own thread until stopped. Rows stay in memory until written."""

    def __init__(self, name: str, sample: Callable[[], list[dict[str, Any]]], hz: float) -> None:
        self.name = name
        self._sample = sample
        self._period = 1.0 / hz if hz > 0 else 0.1
        self.rows: list[dict[str, Any]] = []
        self.errors = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"dsprof-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        # the samplers must not compete with the profiled work for the CPU: lower this thread's
        # priority (on Linux a thread id is a valid PRIO_PROCESS target: only this thread changes)
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SAMPLER_NICE)
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                self.rows.extend(self._sample())
            except Exception as e:  # a process that just exited, a GPU that went away
                self.errors += 1
                self.last_error = repr(e)
            next_t += self._period
            delay = next_t - time.monotonic()
            if delay < 0:  # fell behind (a slow NVML call): skip ahead rather than burst
                next_t = time.monotonic()
                delay = 0
            self._stop.wait(delay)
