"""Reading and writing the JSON documents of a run folder: atomic writes, version checks."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from dsprof.core.child import (
    CHILD_CONFIG_SCHEMA_VERSION,
    CHILD_INFO_SCHEMA_VERSION,
    ChildConfig,
    ChildInfo,
)
from dsprof.core.errors import RunFolderError, SchemaVersionError
from dsprof.core.findings import FINDINGS_SCHEMA_VERSION, FindingsDocument
from dsprof.core.fix import FIX_SCHEMA_VERSION, FixSession
from dsprof.core.live import CAPTURE_SCHEMA_VERSION, CaptureInfo
from dsprof.core.load import LOAD_SCHEMA_VERSION, LoadSummary
from dsprof.core.manifest import SCHEMA_VERSION, RunManifest

M = TypeVar("M", bound=BaseModel)


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so readers never see half a document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_model(path: Path, doc: BaseModel, *, lenient: bool = False) -> None:
    """Persist a pydantic document as indented JSON, atomically.

    lenient: a value JSON cannot hold is written as its str() instead of raising (child.json
    carries what recipes report, which may be any object).
    """
    text = doc.model_dump_json(indent=2, fallback=str if lenient else None)
    write_text_atomic(path, text + "\n")


def _read_versioned(
    path: Path, model: type[M], known_version: int, *, unversioned: int | None = None
) -> M:
    """Read a JSON document, refusing a schema_version other than known_version.

    unversioned: the version a document without schema_version has (one written before the
    document was versioned); None refuses such a document too.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(
            "file is missing (the run folder may be half written)", path=path
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFolderError(
            f"not valid JSON ({e}); the file may be half written", path=path
        ) from None
    if not isinstance(raw, dict):
        raise RunFolderError("expected a JSON object", path=path)
    version = raw.get("schema_version", unversioned)
    if version != known_version:
        raise SchemaVersionError(
            f"schema_version {version!r} is not one this dsprof reads (it reads {known_version}); "
            "upgrade dsprof or re-create the run",
            path=path,
        )
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RunFolderError(f"invalid document at {where}: {first['msg']}", path=path) from None


def read_manifest(path: Path) -> RunManifest:
    """Read run.json, checking its schema version."""
    return _read_versioned(path, RunManifest, SCHEMA_VERSION)


def read_findings(path: Path) -> FindingsDocument:
    """Read findings.json, checking its schema version."""
    return _read_versioned(path, FindingsDocument, FINDINGS_SCHEMA_VERSION)


def read_child_config(path: Path) -> ChildConfig:
    """Read logs/child-config.json (what the parent asked of the child), checking its version."""
    return _read_versioned(path, ChildConfig, CHILD_CONFIG_SCHEMA_VERSION, unversioned=1)


def read_child_info(path: Path) -> ChildInfo:
    """Read child.json (what the child observed), checking its version."""
    return _read_versioned(path, ChildInfo, CHILD_INFO_SCHEMA_VERSION, unversioned=1)


def read_fix_session(path: Path) -> FixSession:
    """Read fix.json (a `dsprof fix` session), checking its schema version."""
    return _read_versioned(path, FixSession, FIX_SCHEMA_VERSION)


def read_load_summary(path: Path) -> LoadSummary:
    """Read load.json (a `dsprof load` run's summary), checking its schema version."""
    return _read_versioned(path, LoadSummary, LOAD_SCHEMA_VERSION)


def read_capture(path: Path) -> CaptureInfo:
    """Read capture.json (an on-demand capture of `dsprof trace`), checking its schema version."""
    return _read_versioned(path, CaptureInfo, CAPTURE_SCHEMA_VERSION)
