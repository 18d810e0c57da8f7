"""The one error family. Only the CLI turns these into messages and exit codes."""

from __future__ import annotations

from pathlib import Path


class DsprofError(Exception):
    """A problem a user can act on. The message names the file and what was wrong."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)

    def __reduce__(self) -> tuple[object, ...]:
        # pickled whole (a parse worker sends its error to the parent), path included
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(
    cls: type[DsprofError], args: tuple[object, ...], state: dict[str, object]
) -> DsprofError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class UsageError(DsprofError):
    """Bad command-line input (a missing script, an unwritable --out)."""


class RunFolderError(DsprofError):
    """A run folder that is missing, half written, or of an unknown schema version."""


class SchemaVersionError(RunFolderError):
    """A persisted document carries a schema_version this dsprof does not read."""


class TraceError(DsprofError):
    """A Kineto trace that cannot be read: truncated, invalid JSON, no events."""
