"""Reading and writing the JSON documents of a run folder: atomic writes, version checks."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from dsprof.core.errors import RunFolderError, SchemaVersionError
from dsprof.core.findings import FINDINGS_SCHEMA_VERSION, FindingsDocument
from dsprof.core.fix import FIX_SCHEMA_VERSION, FixSession
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


def write_model(path: Path, doc: BaseModel) -> None:
    """Persist a pydantic document as indented JSON, atomically."""
    write_text_atomic(path, doc.model_dump_json(indent=2) + "\n")


def _read_versioned(path: Path, model: type[M], known_version: int) -> M:
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
    version = raw.get("schema_version")
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


def read_fix_session(path: Path) -> FixSession:
    """Read fix.json (a `dsprof fix` session), checking its schema version."""
    return _read_versioned(path, FixSession, FIX_SCHEMA_VERSION)
