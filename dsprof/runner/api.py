"""`with dsprof.profile(out=...) as run:` — profile a block of code in this very process.

The same collectors as `dsprof run`, but in-process: steps are outermost module calls or
`dsprof.step()` markers, torch.profiler traces its window, a sampler thread records host (and
NVML) metrics for this process. On exit every hook is removed and torch is left as it was.
Inside a script already running under `dsprof run`, it does nothing: that run collects.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from dsprof.core.manifest import RunManifest
from dsprof.store.layout import RunPaths


class ProfileSession:
    """The context manager behind dsprof.profile()."""

    def __init__(
        self,
        out: str | Path = ".dsprof/runs",
        name: str | None = None,
        steps: tuple[int, int] = (1, 5),
        trace: bool = True,
        sample_hz: float = 10.0,
        capture_steps: int = 3,
        after: Callable[[Any], None] | None = None,
        capture_step_bytes: int | None = None,
        capture_run_bytes: int | None = None,
    ) -> None:
        self.out = Path(out)
        self.name = name
        self.warmup, self.active = steps
        self.trace = trace
        self.sample_hz = sample_hz
        self.capture_steps = capture_steps
        # called with the finished RunResult: dsprof.profile() analyses the folder there (the
        # runner collects; it never runs the analyzers)
        self.after = after
        self.capture_step_bytes = capture_step_bytes
        self.capture_run_bytes = capture_run_bytes
        self.path: Path | None = None
        self.manifest: RunManifest | None = None
        self._inactive = False
        self._child: Any = None
        self._sampling: Any = None

    def __enter__(self) -> ProfileSession:
        from dsprof.collectors.sampling import Sampling
        from dsprof.runner import steps
        from dsprof.runner.child import ChildSession
        from dsprof.runner.launch import RunRequest, child_config, new_manifest
        from dsprof.store.documents import write_model
        from dsprof.store.run_store import create_run_folder

        if steps.TRACKER is not None:
            self._inactive = True  # already profiled (dsprof run, or a nested profile())
            return self
        stem = self.name or Path(sys.argv[0] or "python").stem or "python"
        paths = create_run_folder(self.out, stem)
        self.path = paths.root
        # the same request `dsprof run` makes, for this process's own argv
        req = RunRequest(
            target=sys.argv[0] if sys.argv else "",
            args=list(sys.argv[1:]),
            warmup_steps=self.warmup,
            active_steps=self.active,
            trace=self.trace,
            sample_hz=self.sample_hz,
            capture_steps=self.capture_steps,
            capture_step_bytes=self.capture_step_bytes,
            capture_run_bytes=self.capture_run_bytes,
        )
        self.manifest = new_manifest(req, paths.root.name, kind="api")
        write_model(paths.manifest, self.manifest)
        self._child = ChildSession(child_config(req, run_dir=str(paths.root.resolve())))
        self._child.start()
        self._sampling = Sampling(os.getpid(), self.sample_hz).__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._inactive or self._child is None:
            return
        from dsprof.runner import finalize, steps

        if exc_type is None:
            status, code, error = "ok", 0, None
        elif issubclass(exc_type, KeyboardInterrupt):
            status, code, error = "interrupted", 130, "interrupted (SIGINT)"
        else:
            status, code, error = "failed", 1, f"{exc_type.__name__}: {exc}"
        try:
            self._child.finish(status, code, error)
        finally:
            steps.TRACKER = None
            self._sampling.stop()
        assert self.manifest is not None and self.path is not None
        result = finalize.finish_run(
            RunPaths(self.path),
            self.manifest,
            code,
            interrupted=status == "interrupted",
            samples=self._sampling.samples,
        )
        self.manifest = result.manifest
        if self.after is not None:
            self.after(result)


def profile(**kwargs: Any) -> ProfileSession:
    """See ProfileSession: out, name, steps=(warmup, active), trace, sample_hz, capture_steps,
    analyze, capture_step_bytes, capture_run_bytes. Model calls from several threads are each a
    step (see dsprof/runner/steps.py)."""
    return ProfileSession(**kwargs)
