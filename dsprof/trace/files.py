"""Which trace files a `dsprof analyze` command line names (paths only: nothing heavy imported
at module level), and which of the traces read are distinct."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dsprof.core.errors import TraceError, UsageError
from dsprof.store.layout import is_run_folder, is_short_run_id, is_valid_run_id

if TYPE_CHECKING:
    from dsprof.trace.frames import TraceFrames

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


def distinct_traces(traces: list[TraceFrames]) -> list[TraceFrames]:
    """The traces with repeats removed: the same file (or the same content under another name)
    given twice is analysed once, and the kept trace carries a `duplicate-trace` notice. Two
    different traces that record the same distributedInfo rank cannot be ranks of one job: a
    TraceError naming both."""
    from dsprof.core.findings import Notice

    kept: list[TraceFrames] = []
    seen: dict[bytes, TraceFrames] = {}
    ranks: dict[int, TraceFrames] = {}
    for tf in traces:
        key = _fingerprint(tf)
        first = seen.get(key)
        if first is not None:
            first.notices.append(
                Notice(
                    code="duplicate-trace",
                    message=f"{tf.path} holds the same trace as {first.path}: analysed once",
                )
            )
            continue
        if tf.rank is not None and tf.rank in ranks:
            other = ranks[tf.rank]
            raise TraceError(
                f"records rank {tf.rank} (distributedInfo), as {other.path} does, but holds "
                "another trace: the ranks of one job need one trace each",
                path=tf.path,
            )
        seen[key] = tf
        if tf.rank is not None:
            ranks[tf.rank] = tf
        kept.append(tf)
    return kept


def _fingerprint(tf: TraceFrames) -> bytes:
    """A digest of what the analysis reads from a trace (its events' times, threads, metadata)."""
    import hashlib

    import orjson

    h = hashlib.blake2b(digest_size=16)
    h.update(orjson.dumps(tf.metadata, option=orjson.OPT_SORT_KEYS, default=str))
    for df in (tf.cpu, tf.runtime, tf.gpu, tf.memory):
        h.update(len(df).to_bytes(8, "little"))
        for col in ("ts_ns", "dur_ns", "pid", "tid"):
            h.update(df[col].to_numpy().tobytes())
    return h.digest()
