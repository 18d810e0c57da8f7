"""The markdown summary of a run, for a pull-request comment: tables only, no scripts, no images.

GitHub renders raw HTML inside markdown, so every cell goes through `md_cell`, which escapes
`<`, `>` and `&` as entities and the table syntax (`|`, newlines) as well; the applied diff sits
in a fence longer than any backtick run inside it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dsprof.report.build import Report

# characters that would start markup or break a table cell
_CELL_ESCAPES = (
    ("&", "&amp;"),
    ("<", "&lt;"),
    (">", "&gt;"),
    ("|", "\\|"),
    ("`", "\\`"),
    ("*", "\\*"),
    ("_", "\\_"),
    ("[", "\\["),
    ("]", "\\]"),
)
MAX_EVIDENCE_ROWS = 3


def md_cell(value: object) -> str:
    """Text that shows literally inside a GitHub markdown table cell."""
    text = str(value)
    for raw, escaped in _CELL_ESCAPES:
        text = text.replace(raw, escaped)
    return re.sub(r"\s*[\r\n]+\s*", " ", text).strip()


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows)
    return lines


def _fence(text: str, lang: str = "") -> list[str]:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + lang, text.rstrip("\n"), fence]


def render_markdown(report: Report) -> str:
    """The run summary as GitHub-flavoured markdown."""
    v = report.view
    out = [
        f"### dsprof: {md_cell(v.run_id)}",
        "",
        f"**{md_cell(v.status)}** · started {md_cell(v.started_utc)} · {md_cell(v.duration_text)}"
        f" · target {md_cell(v.target)}"
        + (f" · model {md_cell(', '.join(v.modules))}" if v.modules else ""),
        "",
    ]
    if v.error:
        out += _fence(v.error)
        out.append("")
    out += _table([k.label for k in v.kpis], [[k.value for k in v.kpis]])
    out.append("")
    if v.findings_state != "analysed":
        out += [md_cell(v.findings_state), ""]
    elif not v.findings:
        out += ["No bottleneck found above the analyzers' thresholds.", ""]
    else:
        out += [f"#### Findings ({len(v.findings)})", ""]
        rows: list[list[object]] = []
        for f in v.findings:
            evidence = "; ".join(
                f"{e.metric}={e.value}" + (f" (threshold {e.threshold})" if e.threshold else "")
                for e in f.evidence[:MAX_EVIDENCE_ROWS]
            )
            rows.append(
                [f.severity, f.category, f.impact_text, f.title, evidence, ", ".join(f.recipes)]
            )
        out += _table(["severity", "category", "impact", "finding", "evidence", "recipes"], rows)
        out.append("")
    if v.analyzers_failed:
        out += _table(["analyzer failed", "why"], [list(item) for item in v.analyzers_failed])
        out.append("")
    if v.fix.available:
        accepted = ", ".join(v.fix.accepted) or "none"
        out += [f"#### Fix session: accepted {md_cell(accepted)}", ""]
        out += _table(
            ["trial", "outcome", "speed-up [95% CI]", "p50", "peak memory Δ", "output drift"],
            [
                [
                    t["name"],
                    t["outcome"],
                    t["speedup_text"],
                    t["p50_text"],
                    t["memory_change_text"],
                    t["drift_text"],
                ]
                for t in v.fix.trials
            ],
        )
        out.append("")
        if v.fix.applied_diff:
            out += ["<details><summary>applied diff</summary>", ""]
            out += _fence(v.fix.applied_diff, "diff")
            out += ["", "</details>", ""]
    out.append(f"{len(report.figures)} figures in the HTML report: `dsprof report {v.run_id}`")
    return "\n".join(out) + "\n"
