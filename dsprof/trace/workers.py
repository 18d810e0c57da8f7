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
A worker's TraceError (a truncated gzip, invalid JSON) is raised here with the file's name; a
worker that dies without an answer is reported the same way.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from dsprof.collectors.cpus import whole_usable_cores

if TYPE_CHECKING:
    from dsprof.trace.frames import TraceFrames

ENV_WORKERS = "DSPROF_PARSE_WORKERS"
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
        from dsprof.trace.parse import parse_columns

        answers: list[Any] = []
        try:
            for i, path in enumerate(self.paths):
                if self.slots:
                    answers.append(self._answer(self._running[i % self.slots], path))
                else:  # no worker: parse here
                    answers.append(
                        parse_columns(path, keep_python_functions=self.keep_python_functions)
                    )
        finally:
            self.close()
        out = []
        for parsed in answers:
            if isinstance(parsed, BaseException):
                raise parsed
            out.append(frames_from_columns(parsed))
        return out

    # ---- workers ------------------------------------------------------------------------
    def _start(self, paths: list[Path]) -> None:
        read_fd, write_fd = os.pipe()
        # Ctrl-C is held back until the worker is forked and on the list close() ends: a worker
        # taking it before ignoring it would raise into its copy of the caller's stack, and one
        # forked but not yet listed would outlive an interrupted caller
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                try:
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
        """The worker's next answer (columns or a DsprofError), or an error if it has died."""
        from dsprof.core.errors import TraceError

        try:
            return pickle.load(worker.pipe)
        except (EOFError, pickle.UnpicklingError):
            if worker.status is None:
                worker.status = os.waitpid(worker.pid, 0)[1]
            why = _exit_reason(worker.status)
            return TraceError(f"the parse worker died without an answer ({why})", path=path)

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
        from dsprof.core.errors import DsprofError, TraceError
        from dsprof.trace.parse import parse_columns

        with os.fdopen(write_fd, "wb") as pipe:
            for path in paths:
                answer: Any
                try:
                    answer = parse_columns(path, keep_python_functions=keep_python_functions)
                except DsprofError as e:
                    answer = e
                except Exception as e:  # a bug, or MemoryError: the parent raises it for this file
                    answer = TraceError(
                        f"the parse worker failed ({type(e).__name__}: {e})", path=path
                    )
                pickle.dump(answer, pipe, protocol=5)
                pipe.flush()
                del answer
        status = 0
    except BaseException:  # a broken pipe: the parent has gone; exit all the same
        pass
    finally:
        os._exit(status)


def _exit_reason(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"killed by {signal.Signals(sig).name}" + (
            ", likely out of memory" if sig == signal.SIGKILL else ""
        )
    return f"exit status {os.waitstatus_to_exitcode(status)}"
