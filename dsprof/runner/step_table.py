"""From the child's live step rows to steps.parquet: the model's steps, numbered, with durations.

The child writes a row for every completed call of every root module (and every marker). Once
the run ends, the steps are the markers if the script marked steps, else the calls of the model:
the root named in child.json, or, when the child died before writing it, the root with the most
summed call time (the same rule the child applies).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsprof.core.steps import busy_ns, calls_overlap

__all__ = ["STEP_COLUMNS", "busy_ns", "calls_overlap", "model_root", "model_steps"]

STEP_COLUMNS = (
    "step",
    "start_ns",
    "end_ns",
    "duration_ns",
    "module",
    "source",
    "thread_id",
    "traced",
    "autograd_enabled",
    "training_modules",
)
INT_COLUMNS = ("step", "start_ns", "end_ns", "duration_ns", "thread_id", "training_modules")


def model_root(rows: Sequence[dict[str, Any]], model: int | None = None) -> int | None:
    """The model's root index: child.json's choice (`model`), else the root with the most call
    time in the rows."""
    if model is not None:
        return model
    totals: dict[int, int] = {}
    for r in rows:
        root = r.get("root", -1)
        if isinstance(root, int) and root >= 0:
            totals[root] = totals.get(root, 0) + int(r["end_ns"]) - int(r["start_ns"])
    return max(totals, key=lambda k: totals[k]) if totals else None


def model_steps(rows: Sequence[dict[str, Any]], model: int | None = None) -> list[dict[str, Any]]:
    """The run's steps: markers when there are any, else the model's calls (root `model`, or the
    one with the most call time), in step order."""
    if any(r.get("source") == "marker" for r in rows):
        # once the script marks steps with dsprof.step(), its markers define the steps; module
        # calls recorded before the first marker were provisional
        kept = [r for r in rows if r.get("source") == "marker"]
    else:
        root = model_root(rows, model)
        # rows without a root index (written before roots were told apart) are all kept
        kept = [r for r in rows if root is None or r.get("root", -1) == root]
    out = []
    for r in sorted(kept, key=lambda r: (int(r["step"]), int(r["start_ns"]))):
        row = {c: r.get(c) for c in STEP_COLUMNS}
        row["duration_ns"] = int(r["end_ns"]) - int(r["start_ns"])
        row["thread_id"] = int(r.get("thread_id") or 0)
        out.append(row)
    return out
