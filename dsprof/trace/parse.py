"""A trace file to plain numpy columns (no pandas): the part of loading a worker process can do.

    parsed = parse_columns(path)          # ParsedColumns: picklable, numpy + lists + metadata
    frames = dsprof.trace.frames.frames_from_columns(parsed)   # the pandas side

Only numpy and orjson are imported here, so a process that forks a parse worker before it imports
pandas gets the two done at once (see dsprof.trace.workers).
"""

from __future__ import annotations

import gc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dsprof.trace.columns import ColumnBuilder
from dsprof.trace.reader import CHUNK_BYTES, TraceReader
from dsprof.trace.validate import validate


@dataclass
class ParsedColumns:
    """One trace's tables as numpy columns, the strings behind their codes, and its metadata."""

    path: Path
    tables: dict[str, dict[str, np.ndarray]]
    strings: dict[str, list[Any]]  # "names", "cats", "shapes": value of each code, in order
    metadata: dict[str, Any] = field(default_factory=dict)
    uncompressed_bytes: int = 0
    events_total: int = 0  # every element of traceEvents, skipped kinds included
    # events by category of the categories no table holds (ColumnBuilder.unread_categories)
    unread_categories: dict[str, int] = field(default_factory=dict)
    # (code, message) pairs for FindingsDocument.notices: plain tuples, so a worker process
    # need not import pydantic (dsprof.core.findings.Notice is built from them in frames.py)
    notices: list[tuple[str, str]] = field(default_factory=list)


def parse_columns(
    path: str | Path, *, chunk_bytes: int = CHUNK_BYTES, keep_python_functions: bool = False
) -> ParsedColumns:
    """Stream the trace at path into columns. Raises TraceError naming the file on bad input."""
    path = Path(path)
    reader = TraceReader(path, chunk_bytes=chunk_bytes, keep_python_functions=keep_python_functions)
    builder = ColumnBuilder()
    # The parsed events are plain acyclic dicts, dropped chunk by chunk; the cyclic garbage
    # collector would otherwise walk them on every generation-0 pass (~25 % of the parse).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for chunk in reader.chunks():
            builder.add(chunk)
    finally:
        if gc_was_enabled:
            gc.enable()
    strings = {
        "names": builder.names.categories(),
        "cats": builder.cats.categories(),
        "shapes": builder.shapes.categories(),
    }
    dropped = Counter(
        {
            "a value in place of an object": reader.not_objects,
            "a cat that is not a string": builder.bad_cat,
        }
    )
    tables, metadata, notices = validate(
        builder.columns(), strings, reader.metadata, path=path, dropped_before=+dropped
    )
    return ParsedColumns(
        path=path,
        tables=tables,
        strings=strings,
        metadata=metadata,
        uncompressed_bytes=reader.uncompressed_bytes,
        events_total=reader.events_total,
        unread_categories=dict(builder.unread_categories),
        notices=notices,
    )
