"""Timing a rank's torch.distributed calls, in the child of a multi-rank job.

Ranks that meet in a collective every iteration run in lockstep, and the rank that holds the
others back is the one that spends the least time waiting in those calls. The trace shows that
too, but only for the traced window and only when the script's steps are detected; this record
needs neither: every call of a torch.distributed collective or point-to-point function made by
the script is written to metrics/collectives.jsonl (name, start_ns, end_ns, async_op) as it
returns, so it survives a crash.

The functions are wrapped in the torch.distributed namespace only (what `dist.all_reduce(...)`
and `from torch.distributed import all_reduce` reach); torch's internal calls between them are
not counted twice. With async_op=True, or on NCCL, a call returns before the data has moved: its
time is the launch, and the wait shows in the trace (NCCL kernels) instead.
"""

from __future__ import annotations

import atexit
import functools
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# collective and point-to-point functions of torch.distributed (torch 2.x)
FUNCTIONS = (
    "all_reduce",
    "all_gather",
    "all_gather_into_tensor",
    "all_gather_object",
    "reduce_scatter",
    "reduce_scatter_tensor",
    "all_to_all",
    "all_to_all_single",
    "broadcast",
    "broadcast_object_list",
    "reduce",
    "gather",
    "gather_object",
    "scatter",
    "scatter_object_list",
    "barrier",
    "monitored_barrier",
    "send",
    "recv",
)


class CollectiveLog:
    """Wraps torch.distributed's functions and writes one JSON line per outermost call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()
        self._depth = threading.local()
        self._originals: dict[str, Callable[..., Any]] = {}

    def install(self) -> None:
        import torch.distributed as dist

        for name in FUNCTIONS:
            fn = getattr(dist, name, None)
            if callable(fn):
                self._originals[name] = fn
                setattr(dist, name, self._wrap(name, fn))
        atexit.register(self.uninstall)

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        import torch

        is_compiling = torch.compiler.is_compiling

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            # inside a torch.compile trace the call must stay the plain collective (no graph
            # break); a collective built from another one counts once
            if is_compiling() or self._depth.__dict__.get("n", 0):
                return fn(*args, **kwargs)
            self._depth.n = 1
            start = time.time_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                end = time.time_ns()
                self._depth.n = 0
                self._write(name, start, end, bool(kwargs.get("async_op", False)))

        return timed

    def _write(self, name: str, start: int, end: int, async_op: bool) -> None:
        row = {"name": name, "start_ns": start, "end_ns": end, "async_op": async_op}
        with self._lock:
            if not self._file.closed:
                self._file.write(json.dumps(row) + "\n")

    def uninstall(self) -> None:
        """Put torch.distributed's own functions back and close the file."""
        import torch.distributed as dist

        for name, fn in self._originals.items():
            setattr(dist, name, fn)
        self._originals.clear()
        with self._lock:
            self._file.close()


def install(path: Path) -> CollectiveLog:
    """Start recording this process's torch.distributed calls into path (a .jsonl file)."""
    log = CollectiveLog(path)
    log.install()
    return log
