"""metrics/steps.jsonl: the steps the child writes while the script runs (removed once
steps.parquet is written).

Compact, because a row is written for every model call: a header line `{"fields": [...]}`, then
one JSON array per step in that field order. Rows of every root module are written (the model is
known only at the end); `root` is the root's index in child.json. Readers get dicts with
`duration_ns` added, and skip a last line a killed writer left half-written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

STEP_FIELDS = (
    "step",
    "start_ns",
    "end_ns",
    "module",
    "source",
    "root",
    "thread_id",
    "traced",
    "autograd_enabled",
    "training_modules",
)


def header() -> bytes:
    """The first line of a new steps.jsonl."""
    return json.dumps({"fields": list(STEP_FIELDS)}).encode() + b"\n"


def encode_rows(rows: Iterable[Sequence[Any]]) -> bytes:
    """Step tuples (STEP_FIELDS order) as lines."""
    import orjson

    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def parse_lines(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Rows out of steps.jsonl lines (header, arrays; dict lines of older runs are read too)."""
    fields: Sequence[str] = STEP_FIELDS
    rows: list[dict[str, Any]] = []
    for line in lines:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            if "fields" in value and len(value) == 1:
                fields = value["fields"]
                continue
            row = value
        elif isinstance(value, list) and len(value) == len(fields):
            row = dict(zip(fields, value, strict=True))
        else:
            continue
        if "start_ns" in row and "end_ns" in row:
            row.setdefault("duration_ns", int(row["end_ns"]) - int(row["start_ns"]))
            rows.append(row)
    return rows


def read_live_steps(path: Path) -> list[dict[str, Any]]:
    """Every row of a steps.jsonl ([] when there is none)."""
    if not path.is_file():
        return []
    return parse_lines(path.read_text(encoding="utf-8", errors="replace").splitlines())
