"""torch.profiler in the profiled process, driven by the model's steps.

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
import threading
import time
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from dsprof.store.layout import trace_file_name


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


def _all_threads_config() -> Any:
    """An experimental config that records every thread, or None where torch lacks it."""
    try:
        from torch._C._profiler import _ExperimentalConfig

        return _ExperimentalConfig(profile_all_threads=True)
    except (ImportError, TypeError):
        return None


class ProfilerWindow:
    """Traces the model's steps [warmup, warmup + active) with torch.profiler and exports them.

    Driven by the model's steps, not by torch's schedule: recording starts as model step
    `warmup` *starts* (so a module the script calls before the model, which may lead the step
    count at first, cannot shift the window) and stops once `active` model steps have ended in
    it. The profiler is prepared one step ahead (torch's warm-up). Each traced step is wrapped in
    a `ProfilerStep#N` range on its own thread, as torch's schedule would name it (N in start order).

    Hold: with a hold file, the window's steps count from the first model step that starts after
    the file appears, and the profiler is prepared only then.

    Threads: the profiler records every thread (torch's profile_all_threads), so a model served
    from a thread pool is in the trace; its state is then process-wide, and the window moves
    under a lock from whichever thread starts or ends a step. Where torch lacks the option the
    profiler records only the thread that started it, and only that thread moves the window
    (others are counted in `foreign_steps`): moving it from another thread crashes Kineto.
    """

    def __init__(
        self, trace_dir: Path, warmup: int, active: int, cuda: bool, hold_file: Path | None = None
    ) -> None:
        self.trace_dir = trace_dir
        # with a hold file the window counts from the first model step that starts after the
        # file appears (dsprof load writes it in the middle of the load); steps before it do not
        self.hold_file = hold_file
        self._base: int | None = None if hold_file is not None else 0
        self.warmup = warmup
        self.active = active
        self.cuda = cuda
        self.trace_file: Path | None = None
        self.error: str | None = None
        self.trimmed = False
        self.steps_seen = 0
        self.traced_steps = 0
        self.foreign_steps = 0
        self.threads = "all"
        # when recording began: steps that start after it and end before it stops are traced
        self.recording_since_ns: int | None = None
        self._prepared = False
        self._done = False
        self._lock = threading.Lock()
        self._owner = threading.get_ident()
        self._ranges: dict[int, Any] = {}
        self._next_label: int | None = None
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        self.activities = [a.name for a in activities]
        self._activities = activities
        config = _all_threads_config()
        if config is None:
            self.threads = "starting thread only"
        self._prof = profile(
            activities=activities,
            record_shapes=True,
            profile_memory=cuda,
            **({"experimental_config": config} if config is not None else {}),
        )

    def start(self) -> None:
        """At the start of the script (on its main thread)."""
        self._owner = threading.get_ident()
        if self._base is None:
            # held: Kineto initialises on the first profiler start; on a thread other than the
            # one that imported torch it stalls ~3 s ("External init callback must run in same
            # thread as registerClient", measured on torch 2.13 CPU). An empty session here, on
            # the main thread, pays that once (~1 ms) before the service takes any load.
            with contextlib.suppress(Exception), profile(activities=self._activities):
                pass
            return
        with self._lock:
            if self.warmup <= 1:
                self._prepare()
            if self.warmup == 0:
                self._record()

    def _mine(self) -> bool:
        if self.threads == "all" or threading.get_ident() == self._owner:
            return True
        self.foreign_steps += 1
        return False

    def step_started(self, step: int) -> None:
        """Model step `step` begins on this thread: start recording at the window's first."""
        if self._base is None:
            if self._done or self.hold_file is None or not self.hold_file.exists():
                return
            self._base = step  # released: this step is the window's step 0
        step -= self._base
        if self._done or (step < self.warmup and self.recording_since_ns is None):
            return
        if not self._mine():
            return
        with self._lock:
            if self._done:
                return
            if self.recording_since_ns is None:
                self._prepare()
                self._record()
            if self.recording_since_ns is not None:
                # numbered in start order from the first traced step: the step's own number
                # when calls come one at a time, unique when they overlap
                if self._next_label is None:
                    self._next_label = step + self._base
                label, self._next_label = self._next_label, self._next_label + 1
                rf = record_function(f"ProfilerStep#{label}")
                rf.__enter__()
                self._ranges[threading.get_ident()] = rf

    def step_ended(self, step: int) -> None:
        """Model step `step` ended on this thread: close its range; stop after `active` steps."""
        if self._done or self._base is None:
            return
        step -= self._base
        self.steps_seen += 1
        if self.recording_since_ns is None:
            if not self._prepared and step + 2 >= self.warmup and self._mine():
                with self._lock:
                    self._prepare()  # torch's warm-up: one step ahead of recording
            return
        if not self._mine():
            return
        with self._lock:
            rf = self._ranges.pop(threading.get_ident(), None)
            if rf is not None:
                with contextlib.suppress(Exception):
                    rf.__exit__(None, None, None)
            self.traced_steps += 1
            if self.traced_steps >= self.active:
                self._finish()

    def marker(self, step: int) -> None:
        """dsprof.step(): marked step `step` ended and the next one begins."""
        self.step_ended(step)
        self.step_started(step + 1)

    def in_window(self, step: int) -> bool:
        """True when model step `step` (0-based) falls in the planned window."""
        if self._base is None:
            return False
        return self._base + self.warmup <= step < self._base + self.warmup + self.active

    def stop(self) -> None:
        """At the end of the script: export a partial window if one is open."""
        with self._lock:
            self._finish()

    def _prepare(self) -> None:
        if self._prepared or self._done:
            return
        try:
            self._prof.prepare_trace()
            self._prepared = True
        except Exception as e:  # a profiler that cannot start must not fail the script
            self.error = f"torch.profiler failed to prepare: {e!r}"
            self._done = True

    def _record(self) -> None:
        if not self._prepared or self._done:
            return
        try:
            self._prof.start_trace()
        except Exception as e:
            self.error = f"torch.profiler failed to start: {e!r}"
            self._done = True
            return
        self.recording_since_ns = time.time_ns()

    def _finish(self) -> None:
        # stop exactly once: a second stop after the window closed crashes Kineto
        if self._done:
            return
        self._done = True
        recording = self.recording_since_ns is not None
        self.recording_since_ns = None
        for rf in self._ranges.values():  # steps still open (the script ended inside one)
            with contextlib.suppress(Exception):
                rf.__exit__(None, None, None)
        self._ranges.clear()
        if self._prepared:
            if not recording:
                with contextlib.suppress(Exception):
                    self._prof.start_trace()  # a prepared profiler is stopped through a start
            try:
                self._prof.stop_trace()
            except Exception as e:
                self.error = f"torch.profiler failed to stop: {e!r}"
            else:
                if recording and self.traced_steps:
                    self._export()
        self.trimmed = _malloc_trim()

    @property
    def done(self) -> bool:
        """True once the window is over (exported, failed or stopped)."""
        return self._done

    def traced(self, start_ns: int) -> bool:
        """Whether a step that began at start_ns and ends now lies in the recording."""
        since = self.recording_since_ns
        return since is not None and start_ns >= since

    def _export(self) -> None:
        path = self.trace_dir / trace_file_name(socket.gethostname(), os.getpid())
        try:
            self._prof.export_chrome_trace(str(path))
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
            "threads": self.threads,
            "traced_steps": self.traced_steps,
            "foreign_steps": self.foreign_steps,
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
