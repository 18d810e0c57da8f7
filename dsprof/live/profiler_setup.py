"""What the agent needs of torch.profiler before any capture, kept apart from dsprof.live.capture
so that an idle agent does not import the capture's run-folder code (pydantic documents, the
store: ~4,400 objects that every full garbage collection of the service would walk)."""

from __future__ import annotations

import contextlib
from typing import Any


def all_threads_config() -> Any:
    """torch.profiler's experimental config recording every thread, or None without it."""
    try:
        from torch._C._profiler import _ExperimentalConfig

        return _ExperimentalConfig(profile_all_threads=True)
    except (ImportError, TypeError):
        return None


def warm_up_profiler() -> None:
    """Initialise Kineto on this thread with an empty session (call on the main thread).

    Measured on torch 2.13 CPU: the first profiler start on a thread other than the one that
    registered Kineto's client stalls 7-9 s ("External init callback must run in same thread as
    registerClient"); after one session on the main thread, a start from any thread takes ~1 ms.
    """
    from torch.profiler import ProfilerActivity, profile

    with contextlib.suppress(Exception), profile(activities=[ProfilerActivity.CPU]):
        pass
