"""Persisted types shared by every part of dsprof. No torch, no dash imports here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dsprof.core.errors import (
    DsprofError,
    RunFolderError,
    SchemaVersionError,
    TraceError,
    UsageError,
)

if TYPE_CHECKING:
    from dsprof.core.findings import Evidence, Finding, FindingsDocument, Notice, Severity
    from dsprof.core.manifest import (
        SCHEMA_VERSION,
        CollectorStatus,
        Environment,
        GpuInfo,
        RunManifest,
        StepSummary,
    )
    from dsprof.core.steps import StepStats, step_stats

__all__ = [
    "SCHEMA_VERSION",
    "CollectorStatus",
    "DsprofError",
    "Environment",
    "Evidence",
    "Finding",
    "FindingsDocument",
    "GpuInfo",
    "Notice",
    "RunFolderError",
    "RunManifest",
    "SchemaVersionError",
    "Severity",
    "StepStats",
    "StepSummary",
    "TraceError",
    "UsageError",
    "step_stats",
]

# the pydantic models load on first use: `dsprof analyze` forks its parse workers before that
_LAZY = {
    "Evidence": "findings",
    "Finding": "findings",
    "FindingsDocument": "findings",
    "Notice": "findings",
    "Severity": "findings",
    "SCHEMA_VERSION": "manifest",
    "CollectorStatus": "manifest",
    "Environment": "manifest",
    "GpuInfo": "manifest",
    "RunManifest": "manifest",
    "StepSummary": "manifest",
    "StepStats": "steps",
    "step_stats": "steps",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"dsprof.core.{module}"), name)
