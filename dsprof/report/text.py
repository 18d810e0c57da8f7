"""Terminal rendering with rich: the run summary and findings tables. Only cli/ and this print."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from dsprof.core.findings import FindingsDocument

SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "dim"}


def findings_table(doc: FindingsDocument, *, limit: int | None = None) -> Table:
    """Findings sorted by impact: severity, category, impact, title, key evidence, recipes."""
    table = Table(title="Findings", show_lines=False, expand=False)
    table.add_column("sev", no_wrap=True)
    table.add_column("category", no_wrap=True)
    table.add_column("impact", justify="right", no_wrap=True)
    table.add_column("finding")
    table.add_column("recipes", no_wrap=False)
    findings = doc.sorted().findings
    for f in findings[:limit] if limit else findings:
        evidence = "; ".join(
            f"{e.metric}={_fmt_value(e.value)}{e.unit and ' ' + e.unit}"
            + (f" (threshold {_fmt_value(e.threshold)})" if e.threshold is not None else "")
            for e in f.evidence[:2]
        )
        body = Text(f.title)
        if evidence:
            body.append("\n" + evidence, style="dim")
        table.add_row(
            Text(f.severity, style=SEVERITY_STYLE[f.severity]),
            f.category,
            f"{f.impact:.0%}",
            body,
            ", ".join(f.recipes),
        )
    return table


def _fmt_value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
