"""Persisted types shared by every part of dsprof. No torch, no dash imports here."""

from dsprof.core.errors import (
    DsprofError,
    RunFolderError,
    SchemaVersionError,
    TraceError,
    UsageError,
)
from dsprof.core.findings import Evidence, Finding, FindingsDocument, Severity
from dsprof.core.manifest import (
    SCHEMA_VERSION,
    CollectorStatus,
    Environment,
    GpuInfo,
    RunManifest,
    StepSummary,
)

__all__ = [
    "SCHEMA_VERSION",
    "CollectorStatus",
    "DsprofError",
    "Environment",
    "Evidence",
    "Finding",
    "FindingsDocument",
    "GpuInfo",
    "RunFolderError",
    "RunManifest",
    "SchemaVersionError",
    "Severity",
    "StepSummary",
    "TraceError",
    "UsageError",
]
