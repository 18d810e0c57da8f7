"""Terminal rendering with rich: the run summary and findings tables. Only cli/ and this print."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dsprof.core.findings import FindingsDocument
from dsprof.core.manifest import RunManifest
from dsprof.store.layout import RunPaths

if TYPE_CHECKING:
    from dsprof.collectors.availability import Availability

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


def run_summary(run_dir: Path, manifest: RunManifest) -> list[RenderableType]:
    """What `dsprof run` prints at the end: numbers, findings, the folder and next commands."""
    from dsprof.store.documents import read_findings

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
    kpis.add_row("steps", str(s.count))
    kpis.add_row("step latency", f"p50 {_ms(s.p50_ns)} · p99 {_ms(s.p99_ns)}")
    kpis.add_row("throughput", f"{s.throughput_per_s:.2f} steps/s" if s.throughput_per_s else "-")
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
    out: list[RenderableType] = [Panel(kpis, title=f"dsprof run · {manifest.run_id}", expand=False)]
    findings_path = RunPaths(run_dir).findings
    doc = read_findings(findings_path) if findings_path.is_file() else FindingsDocument()
    if doc.findings:
        out.append(findings_table(doc, limit=8))
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


def runs_table(rows: Sequence[tuple[Path, RunManifest | Exception]]) -> Table:
    """`dsprof ls`: one row per run folder, unreadable ones with their error."""
    table = Table(title="Runs (newest first)")
    table.add_column("run id", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for col, just in (
        ("steps", "right"),
        ("p50", "right"),
        ("p99", "right"),
        ("steps/s", "right"),
        ("peak RSS", "right"),
        ("recipes", "left"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for path, m in rows:
        if isinstance(m, Exception):
            table.add_row(
                path.name, Text("unreadable", style="red"), "", "", "", "", "", str(m)[:60]
            )
            continue
        s = m.summary
        table.add_row(
            m.run_id,
            Text(
                m.status,
                style={"ok": "green", "failed": "red", "interrupted": "yellow"}.get(m.status, ""),
            ),
            str(s.count),
            _ms(s.p50_ns),
            _ms(s.p99_ns),
            f"{s.throughput_per_s:.1f}" if s.throughput_per_s else "-",
            _bytes(s.peak_rss_bytes),
            ", ".join(m.recipes),
        )
    return table


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
