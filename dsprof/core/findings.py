"""Findings: what an analyzer concludes, with its evidence and the recipes that address it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

FINDINGS_SCHEMA_VERSION = 1

Severity = Literal["high", "medium", "low"]
SEVERITY_ORDER: dict[str, int] = {"high": 0, "medium": 1, "low": 2}


class Evidence(BaseModel):
    """One measured fact behind a finding."""

    metric: str
    value: float | int | str
    unit: str = ""
    threshold: float | int | str | None = None
    window: str = Field(default="", description="time window or scope, e.g. 'steps 1-5'")
    source: str = Field(default="", description="where it was read: trace, host.parquet, ...")


class Finding(BaseModel):
    """A bottleneck named with how much it costs and what to do about it."""

    category: str
    severity: Severity
    title: str
    impact: float = Field(ge=0.0, le=1.0, description="share of step time at stake")
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    evidence: list[Evidence] = Field(default_factory=list)
    recipes: list[str] = Field(default_factory=list)
    analyzer: str = ""
    detail: str = ""


class Notice(BaseModel):
    """Something the reader of a diagnosis must know that is not a bottleneck.

    Silence must not read as health: a trace with no device activity, a schema newer than the
    reader knows, events dropped by validation or an initialisation phase cut from the window are
    said here, in the `--json` document and in the human output alike. `code` is a stable
    kebab-case key (see docs/analyzers.md for the list); `message` is a sentence for a person.
    """

    code: str
    message: str


class FindingsDocument(BaseModel):
    """findings.json and the `--json` output of `dsprof analyze`."""

    schema_version: int = FINDINGS_SCHEMA_VERSION
    findings: list[Finding] = Field(default_factory=list)
    analyzers_failed: dict[str, str] = Field(default_factory=dict)
    notices: list[Notice] = Field(default_factory=list)

    def sorted(self) -> FindingsDocument:
        """Highest impact first; severity breaks ties."""
        ordered = sorted(
            self.findings, key=lambda f: (-f.impact, SEVERITY_ORDER[f.severity], f.category)
        )
        return self.model_copy(update={"findings": ordered})
