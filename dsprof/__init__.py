"""dsprof: profile PyTorch inference, diagnose its bottlenecks, fix them, and prove it.

Public API:
    with dsprof.profile(out=".dsprof/runs") as run: ...   # profile a block of code
    dsprof.step()                                          # mark one request / iteration
    dsprof.load_run(path_or_id)                            # read a run folder back
    dsprof.serve_on_demand()                               # let `dsprof trace PID` trace it live
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData


def load_run(ref: Any) -> RunData:
    """Load a run folder (its path, or its id under .dsprof/runs) for analysis."""
    from dsprof.store.run_store import load_run as _load_run

    return _load_run(ref)


def step() -> None:
    """Mark the end of one step (request / iteration). Outside dsprof this does nothing."""
    from dsprof.runner.steps import mark_step

    mark_step()


def profile(*, analyze: bool = True, **kwargs: Any) -> Any:
    """Profile the enclosed block into a run folder: `with dsprof.profile(out=...) as run:`.

    On exit the folder is analysed (findings.json) unless analyze=False; the other keyword
    arguments are dsprof.runner.api.ProfileSession's (out, name, steps, trace, sample_hz, ...).
    """
    from dsprof.runner.api import profile as _profile

    def write_findings(result: Any) -> None:
        from dsprof.analyzers import write_findings as _write

        _write(result.paths.root, analyze=analyze)

    return _profile(after=write_findings, **kwargs)


def serve_on_demand() -> Any:
    """Accept on-demand traces (`dsprof trace PID`) from your user over a local Unix socket.

    One line at a service's start-up, on its main thread; idempotent. Between traces it is one
    idle thread. Returns the control socket's path. See docs/live.md.
    """
    from dsprof.live.agent import serve_on_demand as _serve

    return _serve()


__all__ = ["__version__", "load_run", "profile", "serve_on_demand", "step"]
