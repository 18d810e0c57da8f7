"""Run folders: the contract between collection and everything that reads it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dsprof.store.documents import (
        read_findings,
        read_manifest,
        write_model,
        write_text_atomic,
    )
    from dsprof.store.layout import DEFAULT_RUNS_DIR, RunPaths
    from dsprof.store.run_store import (
        RunData,
        RunStore,
        check_writable_dir,
        create_run_folder,
        is_valid_run_id,
        load_run,
    )

# loaded on first use, so dsprof.store.layout (paths only) stays light
_WHERE = {
    "read_findings": "documents",
    "read_manifest": "documents",
    "write_model": "documents",
    "write_text_atomic": "documents",
    "RunPaths": "layout",
    "DEFAULT_RUNS_DIR": "layout",
    "RunData": "run_store",
    "RunStore": "run_store",
    "check_writable_dir": "run_store",
    "create_run_folder": "run_store",
    "is_valid_run_id": "run_store",
    "load_run": "run_store",
}
__all__ = [
    "DEFAULT_RUNS_DIR",
    "RunData",
    "RunPaths",
    "RunStore",
    "check_writable_dir",
    "create_run_folder",
    "is_valid_run_id",
    "load_run",
    "read_findings",
    "read_manifest",
    "write_model",
    "write_text_atomic",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"dsprof.store.{module}"), name)
