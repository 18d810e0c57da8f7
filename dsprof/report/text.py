"""Terminal rendering with rich: the run summary and the findings list. Only cli/ and this print."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dsprof.core.errors import DsprofError
from dsprof.core.findings import Evidence, Finding, FindingsDocument
from dsprof.core.manifest import STEP_SOURCES, RunManifest
from dsprof.core.steps import StepStats
from dsprof.report.evidence import human_evidence
from dsprof.report.view_model import format_bytes, format_ns, format_rate, model_text

if TYPE_CHECKING:
    from dsprof.collectors.availability import Availability

SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "dim"}
HANG = 4  # indent of a finding's continuation lines; its evidence is indented 2 more


class FindingsList:
    """Findings as a list that reads at any terminal width (80 columns included): one line per
    finding with severity, category, impact and title (the title's continuation indented),
    then its key evidence, advice and recipes indented below. Wrapped at render time to the
    console's width, so `dsprof run`, `analyze` and `fix` print it the same way."""

    def __init__(
        self,
        doc: FindingsDocument,
        *,
        limit: int | None = None,
        evidence: int = 4,
        actions: Sequence[str] | None = None,
    ):
        self.findings = doc.sorted().findings
        self.limit = limit
        self.evidence = evidence
        # one action sentence per finding, in the same (sorted) order (dsprof.report.actions)
        self.actions = list(actions) if actions is not None else [""] * len(self.findings)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width, 40)
        shown = self.findings[: self.limit] if self.limit else self.findings
        more = f", {len(shown)} shown" if len(shown) < len(self.findings) else ""
        yield Text(f"Findings ({len(self.findings)}{more}, by impact)", style="bold")
        for f, action in zip(shown, self.actions, strict=False):
            yield Text("")
            yield from _finding_lines(f, width, self.evidence, action)


def _finding_lines(f: Finding, width: int, n_evidence: int, action: str = "") -> list[Text]:
    head = f"{f.severity:<6} {f.category} {f.impact:>4.0%}  "
    lines = textwrap.wrap(
        head + f.title, width=width, subsequent_indent=" " * HANG, break_on_hyphens=False
    )
    out = []
    first = Text(lines[0])
    first.stylize(SEVERITY_STYLE[f.severity], 0, len(f.severity))
    first.stylize("bold", len(f.severity) + 1, len(f.severity) + 1 + len(f.category))
    out.append(first)
    out += [Text(line) for line in lines[1:]]
    indent = " " * (HANG + 2)
    facts = "; ".join(_evidence_text(e) for e in f.evidence[:n_evidence])
    do = f"Do: {action}" if action else ""
    blocks = [(do, "green"), (facts, "dim"), (f.detail, ""), (_recipes_text(f), "cyan")]
    for text, style in blocks:
        if text:
            for line in textwrap.wrap(
                text, width=width, initial_indent=indent, subsequent_indent=indent,
                break_on_hyphens=False,
            ):  # fmt: skip
                out.append(Text(line, style=style))
    return out


class WrappedRows:
    """Labelled rows that wrap at the console's width: `  label  body`, the body's continuation
    lines aligned under its start (a list for narrow terminals where a table's cells would wrap
    into columns of fragments)."""

    def __init__(self, title: str, rows: Sequence[tuple[str, str, str]]):
        self.title = title
        self.rows = rows  # (label, body, style of the body)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width, 40)
        yield Text(self.title, style="bold")
        label_w = min(max((len(r[0]) for r in self.rows), default=0), width // 3)
        indent = " " * (label_w + 4)
        for label, body, style in self.rows:
            first = f"  {label:<{label_w}}  "
            lines = textwrap.wrap(
                body, width=width, initial_indent=first, subsequent_indent=indent,
                break_on_hyphens=False,
            ) or [first.rstrip()]  # fmt: skip
            for i, line in enumerate(lines):
                t = Text(line)
                t.stylize(style, len(first) if i == 0 else len(indent))
                if i == 0:
                    t.stylize("bold", 2, 2 + len(label))
                yield t


def _evidence_text(e: Evidence) -> str:
    """A fact in human units (dsprof.report.evidence): 'DataLoader share 59% (threshold 20%)'."""
    h = human_evidence(e)
    threshold = f" (threshold {h.threshold})" if h.threshold else ""
    return f"{h.label} {h.value}{threshold}"


def _recipes_text(f: Finding) -> str:
    return f"recipes: {', '.join(f.recipes)}" if f.recipes else ""


def findings_table(
    doc: FindingsDocument, *, limit: int | None = None, actions: Sequence[str] | None = None
) -> FindingsList:
    """The findings for the terminal (kept under its old name: a list now, not a table)."""
    return FindingsList(doc, limit=limit, actions=actions)


class NoticesList:
    """Notices (silence that must not read as health), one paragraph each, continuation lines
    indented, wrapped at the console's width."""

    def __init__(self, doc: FindingsDocument):
        self.notices = doc.notices

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width, 40)
        for n in self.notices:
            head = f"notice ({n.code}): "
            lines = textwrap.wrap(
                head + n.message, width=width, subsequent_indent="    ", break_on_hyphens=False
            )
            for i, line in enumerate(lines):
                t = Text(line)
                if i == 0:
                    t.stylize("yellow", 0, len(head))
                yield t


def notices_text(doc: FindingsDocument) -> list[NoticesList]:
    """The document's notices as one renderable (a list, so callers can print or extend it)."""
    return [NoticesList(doc)] if doc.notices else []


def _fmt_value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    return str(v)


def _ms(ns: int | None) -> str:
    return f"{ns / 1e6:.2f} ms" if ns is not None else "-"


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    if abs(n) < 1024:
        return f"{n} B"
    value = n / 1024
    for unit in ("KiB", "MiB"):
        if abs(value) < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def next_commands(run_dir: Path, manifest: RunManifest) -> list[str]:
    """The exact follow-up commands for this run."""
    import shlex

    argv = " ".join(shlex.quote(a) for a in manifest.argv)
    target = f"-m {argv}" if manifest.kind == "module" else argv
    rd = shlex.quote(str(run_dir))
    commands = [f"dsprof report {rd} -o report.html"]
    # fix runs single-process trials; a multi-rank job is diagnosed, not fixed, for now
    if not manifest.world_size and manifest.kind in ("script", "module"):
        commands.append(f"dsprof fix {target}")
    commands += [f"dsprof analyze {rd}", f"dsprof dashboard {shlex.quote(str(run_dir.parent))}"]
    return commands


def step_rows(s: StepStats) -> list[tuple[str, str]]:
    """The step figures of a summary as (label, text) rows: iterations start to start, with the
    model call's time beside them (dsprof.core.steps); the same texts the report shows."""
    label = s.label
    what = {
        "iterations": f" (start to start of {s.module or 'model'} calls)",
        "markers": " (between dsprof.step() calls)",
        "concurrent-calls": f" ({s.module or 'model'} calls that overlap, each timed by itself)",
    }.get(s.basis, "")
    warm = f", first {s.steps_excluded} left out" if s.steps_excluded else ""
    if s.traced_excluded:
        warm += f", {s.traced_excluded} traced left out (the profiler slows them)"
    elif s.traced_included:
        warm += f", {s.traced_included} of them traced (profiler overhead in)"
    if s.steps_measured != s.count:
        warm += f": {s.steps_measured} measured"
    rows = [
        (f"{label}s", f"{s.count}{what}{warm}"),
        (label, f"p50 {format_ns(s.p50_ns)} · p99 {format_ns(s.p99_ns)}"),
    ]
    if model_text(s):
        share = f"; {s.model_share:.0%} of the time" if s.model_share is not None else ""
        rows.append(
            (
                "model",
                f"{format_ns(s.model_p50_ns)} of a {format_ns(s.p50_ns)} iteration (p50{share})",
            )
        )
    rows.append(
        (
            "throughput",
            f"{format_rate(s.throughput_per_s)} {label}s/s" if s.throughput_per_s else "-",
        )
    )
    return rows


def finding_actions(
    run_dir: Path | None, manifest: RunManifest | None, doc: FindingsDocument
) -> list[str]:
    """The action sentence of each finding (sorted), from the run folder's facts when given."""
    from dsprof.report.actions import finding_action, fix_command

    run = None
    if run_dir is not None:
        from dsprof.store.layout import RunPaths
        from dsprof.store.run_store import load_run_paths

        try:
            run = load_run_paths(RunPaths(run_dir), manifest)
        except DsprofError:  # a half-written table: the findings still print, without places
            run = None
    command = fix_command(manifest)
    return [finding_action(f, run, command).text for f in doc.sorted().findings]


def run_summary(
    run_dir: Path, manifest: RunManifest, doc: FindingsDocument
) -> list[RenderableType]:
    """What `dsprof run` prints at the end: numbers, findings, the folder and next commands."""
    s = manifest.summary
    status_style = {"ok": "green", "failed": "red", "interrupted": "yellow"}.get(
        manifest.status, ""
    )
    kpis = Table.grid(padding=(0, 2))
    kpis.add_column(style="bold")
    kpis.add_column()
    kpis.add_row(
        "status", Text(f"{manifest.status} (exit {manifest.exit_code})", style=status_style)
    )
    # a watch samples the service from outside: no steps, by design (dsprof trace takes them)
    watch = manifest.kind == "watch"
    for label, value in [] if watch else step_rows(s):
        kpis.add_row(label, value)
    if not s.count and not watch:
        kpis.add_row(
            "", Text("no steps: nothing was measured, so no finding means nothing", style="red")
        )
    if s.step_source:
        found = STEP_SOURCES.get(s.step_source, s.step_source)
        model = f"{s.module} · {found}" if s.module else found
        if s.threads and s.threads > 1:
            model += f", on {s.threads} threads"
        kpis.add_row("steps from", model)
    kpis.add_row(
        "peak memory",
        f"RSS {_bytes(s.peak_rss_bytes)}"
        + (
            f" · CUDA allocated {_bytes(s.peak_cuda_allocated_bytes)}"
            if s.peak_cuda_allocated_bytes
            else ""
        ),
    )
    kpis.add_row(
        "utilization",
        f"CPU {s.mean_cpu_pct:.0f}% (100% = one core)" if s.mean_cpu_pct is not None else "CPU -",
    )
    kpis.add_row(
        "",
        f"GPU {s.mean_gpu_util_pct:.0f}%" if s.mean_gpu_util_pct is not None else "GPU - (no NVML)",
    )
    off = [f"{k}: {v.reason}" for k, v in manifest.collectors.items() if not v.ok]
    if off:
        kpis.add_row("not collected", Text("\n".join(off), style="dim"))
    command = {"trace": "dsprof trace", "watch": "dsprof watch", "load": "dsprof load"}
    title = f"{command.get(manifest.kind, 'dsprof run')} · {manifest.run_id}"
    out: list[RenderableType] = [Panel(kpis, title=title, expand=False)]
    out += notices_text(doc)
    if doc.findings:
        out.append(findings_table(doc, limit=8, actions=finding_actions(run_dir, manifest, doc)))
    elif watch:
        out.append(
            Text(
                "No findings from the analyzers that read host samples (io-stall, cpu-threads); "
                "the others need steps and a trace: dsprof trace PID takes them."
            )
        )
    elif not s.count:
        out.append(
            Text("No findings: no steps were recorded, so nothing was diagnosed.", style="red")
        )
    else:
        out.append(
            Text(
                "No findings."
                + (
                    " (analyzers failed: " + ", ".join(doc.analyzers_failed) + ")"
                    if doc.analyzers_failed
                    else ""
                ),
                style="dim",
            )
        )
    out.append(Text(f"Run folder: {run_dir}", style="bold"))
    nxt = Text("Next:\n", style="bold")
    for cmd in next_commands(run_dir, manifest):
        nxt.append(f"  {cmd}\n", style="cyan")
    out.append(nxt)
    return out


# `dsprof ls` fits an 80-column terminal: the script name is the one column that gives way
SCRIPT_WIDTH = 18


def short_id(run_id: str) -> str:
    """The 4-hex tail of a run id: `dsprof report 6581` finds the run by it."""
    return run_id.rsplit("-", 1)[-1]


def runs_table(rows: Sequence[tuple[Path, RunManifest | Exception]]) -> Table:
    """`dsprof ls`: one row per run folder (short id, start, script, iteration figures).

    Readable at 80 columns: numbers never wrap or shorten; the script name is cut with an
    ellipsis when the terminal is narrow. Unreadable folders show their error.
    """
    table = Table(title="Runs (newest first)", box=None, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("id", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("script", no_wrap=True, overflow="ellipsis", max_width=SCRIPT_WIDTH)
    table.add_column("status", no_wrap=True)
    for col in ("iters", "it p50", "it p99", "it/s", "RSS"):
        table.add_column(col, justify="right", no_wrap=True)
    for path, m in rows:
        if isinstance(m, Exception):
            unreadable = Text("unreadable", style="red")
            table.add_row(short_id(path.name), "", path.name, unreadable, "", "", "", "", "")
            continue
        s = m.summary
        old = "*" if s.count and not s.basis else ""  # written before steps were iterations
        script = Path(m.target).name + (f" +{'+'.join(m.recipes)}" if m.recipes else "")
        table.add_row(
            short_id(m.run_id),
            _started(m.start_ns),
            Text(script),
            Text(
                m.status,
                style={"ok": "green", "failed": "red", "interrupted": "yellow"}.get(m.status, ""),
            ),
            f"{s.count}{old}",
            format_ns(s.p50_ns) if s.p50_ns is not None else "-",
            format_ns(s.p99_ns) if s.p99_ns is not None else "-",
            format_rate(s.throughput_per_s) if s.throughput_per_s else "-",
            format_bytes(s.peak_rss_bytes) if s.peak_rss_bytes is not None else "-",
        )
    return table


def _started(ns: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ns / 1e9).strftime("%m-%d %H:%M")


def env_table(rows: Sequence[Availability]) -> Table:
    """`dsprof env`: each collector, available or not, and why."""
    table = Table(title="What dsprof can collect here")
    table.add_column("collector")
    table.add_column("available")
    table.add_column("detail / reason")
    for r in rows:
        table.add_row(
            r.name, Text("yes", style="green") if r.ok else Text("no", style="yellow"), r.detail
        )
    return table
