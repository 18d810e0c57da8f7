"""Check once every field the engine reads; drop what fails and say so in notices.

Sits between the raw columns (dsprof.trace.columns) and the frames (dsprof.trace.frames), in the
parse worker (numpy only). Past this point no analyzer has to defend itself against types.
"""

from __future__ import annotations

from typing import Any

# Kineto writes "schemaVersion": 1 (every trace in ../shared/traces, 2020 to 2026)
KNOWN_SCHEMA_VERSIONS = frozenset({1})


def check_metadata(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """Notices (code, message) about the trace's top-level keys."""
    notices = []
    version = metadata.get("schemaVersion")
    if "schemaVersion" in metadata and not (
        type(version) is int and version in KNOWN_SCHEMA_VERSIONS
    ):
        known = ", ".join(map(str, sorted(KNOWN_SCHEMA_VERSIONS)))
        notices.append(
            (
                "unknown-schema-version",
                f"schemaVersion {_short(version)} is not one this reader knows ({known}): "
                "the events were read as schema 1, so findings may miss or misread new fields",
            )
        )
    return notices


def _short(value: Any, limit: int = 40) -> str:
    """A value as JSON-ish text, cut to limit characters, for a message."""
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= limit else text[: limit - 3] + "..."
