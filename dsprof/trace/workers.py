"""Parse traces in forked worker processes while the caller goes on (importing the analyzers).

    pending = TraceWorkers(paths)       # forks now, one worker per core at most
    ...                                 # import pandas and the analyzers meanwhile
    frames = pending.frames()           # list of TraceFrames, in the order of paths

`dsprof analyze TRACE...` spends as long importing pandas and the analyzers as parsing a
50 MB trace; a worker does the parse (numpy + orjson only, dsprof.trace.parse) on the other core
and sends the columns back through a pipe (pickle protocol 5: arrays travel as raw buffers).
Several traces (the ranks of a job) are parsed side by side, one worker per core.

Workers are forked only from a single-threaded process (a fork copies the calling thread alone;
thread pools that already exist, OpenBLAS's or torch's, would be left broken in the child): on
Linux /proc/self/task says so, elsewhere no numpy/torch may be imported yet. Also only on a
platform with os.fork and more than one usable core, and unless DSPROF_PARSE_WORKERS=0. Anywhere
else the traces are parsed in this process when frames() is called, with the same result.
A worker answers with columns or, for a trace it cannot read, a ParseFailure: the message as
data, the same one an in-process parse gives (dsprof.trace.parse.parse_or_failure), raised here
as a TraceError naming the file; a worker that dies without an answer is reported the same way.
A worker never outlives this process, however it ends (SIGKILL included): on Linux the kernel
kills it with its parent (PR_SET_PDEATHSIG), elsewhere a thread watches the parent's pid.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from dsprof.collectors.cpus import whole_usable_cores

if TYPE_CHECKING:
    from dsprof.trace.frames import TraceFrames

ENV_WORKERS = "DSPROF_PARSE_WORKERS"
PARENT_POLL_S = 0.2  # how often a worker without a death signal checks its parent
# imported by a process whose native threads a fork would not carry into the child
_THREADED_MODULES = ("numpy", "torch", "pandas", "pyarrow")


def worker_count(n_traces: int) -> int:
    """How many workers to fork for n_traces (0: parse in this process)."""
    setting = os.environ.get(ENV_WORKERS, "").strip()
    cap = whole_usable_cores()
    if setting:
        try:
            cap = max(0, int(setting))
        except ValueError:
            cap = 0
    if not hasattr(os, "fork") or cap < 1 or whole_usable_cores() < 2:
        return 0
    if not _single_threaded():
        return 0
    return min(n_traces, cap)


def _single_threaded() -> bool:
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:  # no /proc: be strict
        return threading.active_count() == 1 and not any(
            m in sys.modules for m in _THREADED_MODULES
        )


@dataclass
class _Worker:
    pid: int
    pipe: BinaryIO
    status: int | None = None  # its wait status, once reaped


class TraceWorkers:
    """Traces being parsed by forked workers (or, where that is not safe, parsed on demand).

    All workers are forked here, while this process is still single-threaded; with more traces
    than workers, worker k parses traces k, k + workers, ... in turn and sends each answer as it
    is done, and frames() reads them in the traces' order.
    """

    def __init__(self, paths: list[Path], *, keep_python_functions: bool = False) -> None:
        self.paths = [Path(p) for p in paths]
        self.keep_python_functions = keep_python_functions
        self.slots = worker_count(len(self.paths))
        self._running: list[_Worker] = []
        for k in range(self.slots):
            self._start(self.paths[k :: self.slots])

    def frames(self) -> list[TraceFrames]:
        """Every trace's frames, in the order given; raises the first trace's error."""
        from dsprof.trace.frames import frames_from_columns
        from dsprof.trace.parse import ParseFailure, parse_or_failure

        answers: list[Any] = []
        try:
            for i, path in enumerate(self.paths):
                if self.slots:
                    answers.append(self._answer(self._running[i % self.slots], path))
                else:  # no worker: parse here
                    answers.append(
                        parse_or_failure(path, keep_python_functions=self.keep_python_functions)
                    )
        finally:
            self.close()
        out = []
        for parsed in answers:
            if isinstance(parsed, ParseFailure):
                raise parsed.error()
            out.append(frames_from_columns(parsed))
        return out

    # ---- workers ------------------------------------------------------------------------
    def _start(self, paths: list[Path]) -> None:
        read_fd, write_fd = os.pipe()
        # Ctrl-C is held back until the worker is forked and on the list close() ends: a worker
        # taking it before ignoring it would raise into its copy of the caller's stack, and one
        # forked but not yet listed would outlive an interrupted caller
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        parent = os.getpid()
        try:
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                try:
                    _die_with_parent(parent)
                    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends it on Ctrl-C
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
                    os.close(read_fd)
                    for other in self._running:  # the pipes of the workers forked before this one
                        other.pipe.close()
                    _work(paths, self.keep_python_functions, write_fd)
                finally:
                    os._exit(1)
            os.close(write_fd)
            self._running.append(_Worker(pid, os.fdopen(read_fd, "rb")))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def _answer(self, worker: _Worker, path: Path) -> Any:
        """The worker's next answer (columns or a ParseFailure); a ParseFailure if it died."""
        from dsprof.trace.parse import ParseFailure

        try:
            return pickle.load(worker.pipe)
        except (EOFError, pickle.UnpicklingError):
            if worker.status is None:
                worker.status = os.waitpid(worker.pid, 0)[1]
            why = _exit_reason(worker.status)
            return ParseFailure(path, f"the parse worker died without an answer ({why})")

    def close(self) -> None:
        """End the workers still running and reap them (after frames(), on an error, on Ctrl-C)."""
        for w in self._running:
            w.pipe.close()
            if w.status is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGKILL)  # a worker that has finished is a zombie here
                w.status = os.waitpid(w.pid, 0)[1]

    def __enter__(self) -> TraceWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _work(paths: list[Path], keep_python_functions: bool, write_fd: int) -> None:
    """The forked worker's whole life: parse each trace, send its columns (or error), exit."""
    status = 1
    try:
        from dsprof.trace.parse import parse_or_failure

        with os.fdopen(write_fd, "wb") as pipe:
            for path in paths:
                answer = parse_or_failure(path, keep_python_functions=keep_python_functions)
                pickle.dump(answer, pipe, protocol=5)
                pipe.flush()
                del answer
        status = 0
    except BaseException:  # a broken pipe: the parent has gone; exit all the same
        pass
    finally:
        os._exit(status)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """Make this (forked) worker end when the process that forked it ends, however it ends."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent:  # the parent died before the signal was asked for
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    """Where no death signal is available: exit once this process has been re-parented."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _exit_reason(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"killed by {signal.Signals(sig).name}" + (
            ", likely out of memory" if sig == signal.SIGKILL else ""
        )
    return f"exit status {os.waitstatus_to_exitcode(status)}"
