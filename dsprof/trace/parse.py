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

from dsprof.core.errors import DsprofError, TraceError
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


@dataclass
class ParseFailure:
    """A trace that could not be read, as data (a worker sends it through a pipe): the message
    names the problem, `error()` the TraceError naming the file too."""

    path: Path
    message: str

    def error(self) -> TraceError:
        """The error `dsprof analyze` reports (exit code 2, one line)."""
        return TraceError(self.message, path=self.path)


def parse_or_failure(
    path: str | Path, *, keep_python_functions: bool = False
) -> ParsedColumns | ParseFailure:
    """parse_columns(), or a ParseFailure in place of any exception: the same answer whether
    the parse ran in a worker process or here."""
    path = Path(path)
    try:
        return parse_columns(path, keep_python_functions=keep_python_functions)
    except DsprofError as e:
        prefix = f"{path}: "
        text = str(e)
        return ParseFailure(path, text[len(prefix) :] if text.startswith(prefix) else text)
    except MemoryError:
        return ParseFailure(path, "ran out of memory while reading the trace")
    except RecursionError:
        return ParseFailure(path, "the trace nests values too deeply to be read")
    except Exception as e:  # a bug in the reader: say where, not the exception's text
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}" if tb else "?"
        return ParseFailure(
            path,
            f"the trace reader failed on this file ({type(e).__name__} at {where}); "
            "this is a dsprof bug: please report it with the file",
        )


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
    columns = builder.columns()  # fills builder.shapes
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
        columns, strings, reader.metadata, path=path, dropped_before=+dropped
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
