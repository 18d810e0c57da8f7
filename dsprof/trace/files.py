"""Which trace files a `dsprof analyze` command line names (paths only: nothing heavy imported)."""

from __future__ import annotations

from pathlib import Path

from dsprof.core.errors import UsageError
from dsprof.store.layout import is_run_folder, is_short_run_id, is_valid_run_id

TRACE_SUFFIXES = (".json", ".json.gz")


def expand_trace_paths(paths: list[Path]) -> list[Path]:
    """Files as given; a directory counts as the trace files directly inside it, sorted."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            inside = sorted(
                q for q in p.iterdir() if q.is_file() and q.name.endswith(TRACE_SUFFIXES)
            )
            if not inside:
                raise UsageError("no .json or .json.gz trace files in this directory", path=p)
            files.extend(inside)
        elif p.is_file():
            files.append(p)
        else:
            raise UsageError("no such trace file or directory", path=p)
    return files


def names_a_run(targets: list[Path]) -> bool:
    """True when targets name one run (its folder, its id or short id, or "latest"), not traces."""
    if len(targets) != 1:
        return False
    t = targets[0]
    name = str(t)
    return (
        is_run_folder(t)
        or name == "latest"
        or (not t.exists() and (is_valid_run_id(name) or is_short_run_id(name)))
    )


def trace_targets(targets: list[Path]) -> list[Path]:
    """The trace files that targets (not naming a run) stand for; a run folder among them is a
    UsageError, as is a path that does not exist."""
    for t in targets:
        if is_run_folder(t):
            raise UsageError("give one run folder, or trace files; not a mix", path=t)
    return expand_trace_paths(targets)
