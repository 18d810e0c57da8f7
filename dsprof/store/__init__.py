"""Run folders: the contract between collection and everything that reads it."""

from dsprof.store.documents import read_findings, read_manifest, write_model, write_text_atomic
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import (
    DEFAULT_RUNS_DIR,
    RunData,
    RunStore,
    check_writable_dir,
    create_run_folder,
    is_valid_run_id,
    load_run,
)

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
