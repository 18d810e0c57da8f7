"""Recording how the script builds its DataLoaders (settings and where), for the analyzers."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from dsprof.runner.frames import user_frame

RECORDED: list[dict[str, Any]] = []
_MAX = 20


def install() -> Callable[[], None]:
    """Wrap DataLoader.__init__ to record its settings; returns the function that unwraps it."""
    from torch.utils.data import DataLoader

    original = DataLoader.__init__

    @functools.wraps(original)
    def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if len(RECORDED) < _MAX:
            frame = user_frame(sys._getframe(1))
            RECORDED.append(
                {
                    "num_workers": self.num_workers,
                    "pin_memory": bool(self.pin_memory),
                    "batch_size": self.batch_size,
                    "persistent_workers": bool(self.persistent_workers),
                    "prefetch_factor": self.prefetch_factor,
                    "file": frame[0] if frame else None,
                    "line": frame[1] if frame else None,
                }
            )

    DataLoader.__init__ = recording_init  # type: ignore[method-assign]

    def restore() -> None:
        DataLoader.__init__ = original  # type: ignore[method-assign]

    return restore
