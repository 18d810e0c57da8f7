"""torch.profiler in the profiled process, driven by a schedule over the detected steps.

Defaults skip 1 warm-up step and trace the next 5. The trace is torch's own Chrome-trace export,
gzip'd, unchanged (Perfetto, HTA and TensorBoard open it).

Memory guard: with record_shapes, glibc malloc fragments the heap while tracing (DESIGN.md:
~300 MB RSS per BERT b8 step). dsprof keeps the traced window short (5 steps by default) and,
when the window closes, calls glibc's malloc_trim(0) to hand the freed arenas back to the OS. It
does not change the allocator (MALLOC_* variables would change the script's own speed).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import socket
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, schedule


def _malloc_trim() -> bool:
    """Return freed heap memory to the OS (glibc only); True when it ran."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


class ProfilerWindow:
    """Runs torch.profiler over steps [warmup, warmup + active) and exports the trace."""

    def __init__(
        self, trace_dir: Path, warmup: int, active: int, cuda: bool, hold_file: Path | None = None
    ) -> None:
        self.trace_dir = trace_dir
        # with a hold file the window opens at the first step after the file appears (dsprof
        # load writes it in the middle of the load); steps before it do not count
        self.hold_file = hold_file
        self._base: int | None = None if hold_file is not None else 0
        self._steps_total = 0
        self.warmup = warmup
        self.active = active
        self.cuda = cuda
        self.trace_file: Path | None = None
        self.error: str | None = None
        self.trimmed = False
        self.steps_seen = 0
        self._done = False
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        self.activities = [a.name for a in activities]
        self._activities = activities
        # held: made and started at release, on the thread that makes the steps (a server's
        # model calls run on a worker thread)
        self._prof: Any = None if hold_file is not None else self._new_profile()

    def _new_profile(self) -> Any:
        warmup = self.warmup
        return profile(
            activities=self._activities,
            # warmup steps run the profiler but discard its events: one such step lets it
            # settle; earlier ones it waits out with the profiler off
            schedule=schedule(
                wait=max(warmup - 1, 0), warmup=1 if warmup > 0 else 0, active=self.active, repeat=1
            ),
            on_trace_ready=self._export,
            record_shapes=True,
            profile_memory=self.cuda,
        )

    def start(self) -> None:
        if self._prof is not None:
            self._prof.start()
            return
        # held: Kineto initialises on the first profiler start; on a thread other than the one
        # that imported torch it stalls ~3 s ("External init callback must run in same thread
        # as registerClient", measured on torch 2.13 CPU). An empty session here, on the main
        # thread, pays that once (~1 ms) before the service takes any load.
        with contextlib.suppress(Exception), profile(activities=self._activities):
            pass

    def in_window(self, step: int) -> bool:
        """True when step (0-based) falls in the traced window."""
        if self._base is None:
            return False
        return self._base + self.warmup <= step < self._base + self.warmup + self.active

    def step(self) -> None:
        """Advance the schedule at a step end; stop the profiler once the window is exported."""
        if self._done:
            return
        self._steps_total += 1
        if self._base is None:
            if self.hold_file is not None and self.hold_file.exists():
                # the next step is the schedule's step 0
                self._base = self._steps_total
                self._prof = self._new_profile()
                self._prof.start()
            return
        self.steps_seen += 1
        self._prof.step()
        if self.trace_file is not None or self.error is not None:
            self._finish()

    def stop(self) -> None:
        """At the end of the script: export a partial window if one is open."""
        self._finish()

    def _finish(self) -> None:
        # stop exactly once: a second stop() after the window closed crashes Kineto
        if self._done:
            return
        self._done = True
        if self._base is None:
            return  # held and never started
        with contextlib.suppress(Exception):
            self._prof.stop()
        self.trimmed = _malloc_trim()

    def _export(self, prof: Any) -> None:
        path = self.trace_dir / f"{socket.gethostname()}_{os.getpid()}.pt.trace.json.gz"
        try:
            prof.export_chrome_trace(str(path))
        except Exception as e:  # a failed export must not fail the user's script
            self.error = f"export_chrome_trace failed: {e!r}"
            return
        self.trace_file = path

    def status(self) -> dict[str, Any]:
        return {
            "activities": self.activities,
            "wait": self.warmup,
            "held_until_step": self._base if self.hold_file is not None else None,
            "active": self.active,
            "record_shapes": True,
            "profile_memory": self.cuda,
            "trace_file": self.trace_file.name if self.trace_file else None,
            "error": self.error,
            "malloc_trim_after_trace": self.trimmed,
        }


def cuda_in_use() -> bool:
    """CUDA activity is traced when torch sees a GPU."""
    try:
        return bool(torch.cuda.is_available())
    except Exception:
        return False
