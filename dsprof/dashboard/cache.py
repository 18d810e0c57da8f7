"""Reports built for the dashboard, cached until the run folder's files change."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from dsprof.store.layout import RunPaths

if TYPE_CHECKING:
    from dsprof.report.build import Report

# a run page with trace figures costs a trace parse; keep the latest few
MAX_CACHED = 16
_LOCK = threading.Lock()
_CACHE: OrderedDict[tuple[Path, tuple[tuple[str, int, int], ...]], Report] = OrderedDict()


def signature(run_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """(name, mtime_ns, size) of the documents and tables a report reads: changes on any write."""
    paths = RunPaths(run_dir)
    files = paths.documents()
    for d in (paths.metrics_dir, paths.trace_dir):
        if d.is_dir():
            files.extend(sorted(d.iterdir()))
    out = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        out.append((str(f.relative_to(run_dir)), st.st_mtime_ns, st.st_size))
    return tuple(out)


def cached_report(run_dir: Path) -> Report:
    """The report of a run folder, rebuilt only when its files changed."""
    from dsprof.report.build import build_report
    from dsprof.store.run_store import load_run

    key = (run_dir.resolve(), signature(run_dir))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    report = build_report(load_run(run_dir))
    with _LOCK:
        _CACHE[key] = report
        while len(_CACHE) > MAX_CACHED:
            _CACHE.popitem(last=False)
    return report
