"""Markdown for a pull-request comment: a run's summary and a comparison of two runs.

GitHub renders raw HTML inside markdown, so every cell goes through `md_cell`, which escapes
`<`, `>` and `&` as entities and the table syntax (`|`, newlines) as well; the applied diff sits
in a fence longer than any backtick run inside it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dsprof.report.build import Report
    from dsprof.report.compare import Comparison
    from dsprof.report.view_model import Kpi

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


def md_cell(value: object) -> str:
    """Text that shows literally inside a GitHub markdown table cell."""
    text = str(value)
    for raw, escaped in _CELL_ESCAPES:
        text = text.replace(raw, escaped)
    return re.sub(r"\s*[\r\n]+\s*", " ", text).strip()


def _table(header: list[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows)
    return lines


def _fence(text: str, lang: str = "") -> list[str]:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + lang, text.rstrip("\n"), fence]


def _md_text(value: object) -> str:
    """Text that shows literally in a markdown paragraph or list item (not a table cell)."""
    return md_cell(value).replace("\\|", "|")


def _code(value: object) -> str:
    """Inline code that shows literally: an HTML <code> element with its text escaped (a name
    from the run stays text, whatever backticks or markup it holds)."""
    text = re.sub(r"\s*[\r\n]+\s*", " ", str(value))
    return f"<code>{html.escape(text, quote=False)}</code>"


def verdict_line(report: Report) -> str:
    """The first line a reviewer reads: the fix result, the top bottleneck, or a clean bill."""
    v = report.view
    banner = v.fix.banner
    if banner is not None and banner.outcome == "win":
        return f"**dsprof fix: {_md_text(banner.headline)}** ({_md_text(banner.speedup_text)})"
    if v.status in ("failed", "interrupted"):
        return f"**The run {v.status}** (exit {v.exit_code}): figures cover what ran."
    if v.findings_state != "analysed":
        return f"**{_md_text(v.findings_state)}**"
    if not v.findings:
        return "**No bottleneck above the analyzers' thresholds.**"
    f = v.findings[0]
    return (
        f"**Bottleneck: {_md_text(f.category)}** ({f.severity}, {f.impact_text} of the time): "
        f"{_md_text(f.title)}"
    )


def _kpi_value(k: Kpi) -> str:
    """The value with its second figure: '316 ms (model 78.4 ms)'."""
    return f"{k.value} ({k.note})" if k.note else k.value


def _kpi_rows(report: Report, base: Comparison | None) -> list[str]:
    v = report.view
    if base is None:
        return _table(["", "this run"], [[k.label, _kpi_value(k)] for k in v.kpis])
    by_key = {m.key: m for m in base.metrics}
    rows: list[list[object]] = []
    for k in v.kpis:
        m = by_key.get(k.key)
        delta = ""
        if m is not None and m.change_pct is not None:
            delta = f"{m.change_pct:+.1f} %"
            if k.key == "p50" and base.iteration is not None:
                it = base.iteration
                delta += f" [{it.low_pct:+.1f} %, {it.high_pct:+.1f} %] {it.verdict}"
        rows.append([k.label, _kpi_value(k), m.a_text if m is not None else "n/a", delta])
    return _table(["", "this run", f"base {base.a_id}", "Δ"], rows)


def _finding_items(report: Report) -> list[str]:
    out: list[str] = []
    for f in report.view.findings:
        out.append(
            f"- **{f.severity}** {_md_text(f.category)}, {f.impact_text}: {_md_text(f.title)}"
        )
        if f.action:
            command = f" — {_code(f.action_command)} tests it." if f.action_command else "."
            out.append(f"  Do: {_md_text(f.action)}{command}")
        if f.evidence:
            out += ["  <details><summary>evidence</summary>", ""]
            rows = [[e.label, e.value, e.threshold, e.window, e.source] for e in f.evidence]
            out += [
                "  " + line
                for line in _table(["fact", "value", "threshold", "window", "source"], rows)
            ]
            out += ["", "  </details>"]
    return out


def render_markdown(report: Report, base: Comparison | None = None) -> str:
    """The run summary as GitHub-flavoured markdown, as a reviewer reads it: the verdict line
    first, the KPIs (with Δ against `base` when given), findings as a list with their action
    and the evidence folded, repository-relative paths."""
    v = report.view
    target = v.target_display or v.target
    command = " ".join([target, *v.argv[1:]])
    title = _md_text(Path(target).name)
    if v.run_id != Path(target).name:
        title += f" ({md_cell(v.run_id)})"
    out = [
        f"### dsprof: {title}",
        "",
        verdict_line(report),
        "",
    ]
    if base is not None:
        out += [f"Against the base run: {_md_text(base.headline)}", ""]
        out += [f"> warning: {_md_text(w)}" for w in base.warnings]
    if v.error:
        out += _fence(v.error)
        out.append("")
    out += _kpi_rows(report, base)
    out.append("")
    if v.step_definition:
        out += [f"<sub>{_md_text(v.step_definition)}</sub>", ""]
    started = f" · started {md_cell(v.started_utc)}" if v.started_utc else ""
    out.append(
        f"{md_cell(v.status)}{started} · {md_cell(v.duration_text)} · {_code(command)}"
        + (f" · model {_code(', '.join(v.modules))}" if v.modules else "")
    )
    out.append("")
    if v.findings:
        out += [f"#### Findings ({len(v.findings)})", ""]
        out += _finding_items(report)
        out.append("")
    elif v.findings_state != "analysed":
        out += [_md_text(v.findings_state), ""]
    if v.analyzers_failed:
        out += _table(["analyzer failed", "why"], [list(item) for item in v.analyzers_failed])
        out.append("")
    if v.fix.available:
        accepted = ", ".join(v.fix.accepted) or "none"
        out += [f"#### Fix session: accepted {md_cell(accepted)}", ""]
        b = v.fix.banner
        if b is not None:
            facts = [b.interval_text, f"speed-up {b.speedup_text}" if b.speedup_text else ""]
            facts += [f"output drift {b.drift_text}" if b.drift_text else "", b.memory_text]
            shown = " · ".join(_md_text(f) for f in facts if f)
            out += [f"{_md_text(b.headline)}" + (f" ({shown})" if shown else ""), ""]
            out += [
                "<sub>before: the session's untraced reference runs; after: its trial runs</sub>",
                "",
            ]
        if b is not None and b.noise_text:
            out += [f"Noise check: {_md_text(b.noise_text)}", ""]
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
            label = v.fix.banner.diff_label if v.fix.banner is not None else "applied diff"
            out += [f"<details><summary>{md_cell(label)}</summary>", ""]
            out += _fence(v.fix.applied_diff, "diff")
            out += ["", "</details>", ""]
    out.append(f"{len(report.figures)} figures in the HTML report: `dsprof report {v.run_id}`")
    return "\n".join(out) + "\n"


def render_comparison_markdown(cmp: Comparison, threshold_pct: float | None = None) -> str:
    """`dsprof compare --format md`: the verdict, what changed, the KPIs and findings."""
    it = cmp.iteration
    if it is None:
        verdict = f"**{_md_text(cmp.headline)}**"
    else:
        gate = ""
        if threshold_pct is not None:
            gate = " — gate " + (
                f"**FAILED** (the whole interval lies above +{threshold_pct:g} %)"
                if cmp.fails(threshold_pct)
                else f"passed (+{threshold_pct:g} %)"
            )
        verdict = (
            f"**Iteration p50 {it.change_pct:+.1f} % "
            f"[{it.low_pct:+.1f} %, {it.high_pct:+.1f} %]: {it.verdict}**{gate}"
        )
    out = [f"### dsprof compare: {md_cell(cmp.b_id)} vs {md_cell(cmp.a_id)}", "", verdict, ""]
    out += [f"> warning: {_md_text(w)}" for w in cmp.warnings]
    if cmp.warnings:
        out.append("")
    if cmp.what_changed:
        out += ["#### What changed", ""]
        out += _table(["", "A", "B"], [list(row) for row in cmp.what_changed])
    else:
        out += ["Nothing recorded changed between the runs (command, software, machine)."]
    out.append("")
    rows = []
    for m in cmp.metrics:
        change = "n/a" if m.change_pct is None else f"{m.change_pct:+.1f} %"
        rows.append([m.label, m.a_text, m.b_text, change])
    out += _table(["", "A", "B", "change"], rows)
    out.append("")
    lines = []
    if cmp.only_a:
        lines.append(f"- gone in B: {_md_text(', '.join(cmp.only_a))}")
    if cmp.only_b:
        lines.append(f"- new in B: {_md_text(', '.join(cmp.only_b))}")
    lines += [f"- moved: {_md_text(c.text)}" for c in cmp.changed_findings]
    if lines:
        out += ["#### Findings", "", *lines, ""]
    out.append(
        "<sub>Iteration: model call to model call; the interval is a 95 % bootstrap over both "
        "runs' iterations.</sub>"
    )
    return "\n".join(out) + "\n"
