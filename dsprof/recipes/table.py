"""The terminal view of a fix session: candidates, before/after table, applied changes (rich)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dsprof.core.fix import FixSession
from dsprof.core.manifest import StepSummary
from dsprof.store.layout import RunPaths


def _ms(ns: int | None) -> str:
    return f"{ns / 1e6:.1f}" if ns else "-"


def _mb(b: int | None) -> str:
    return f"{b / 2**20:.0f}" if b is not None else "-"


def _drift(t: Any) -> str:
    d = t.verdict.drift if t.verdict else None
    if d is None:
        return "-"
    if d.deterministic is not None:
        return "deterministic" if d.deterministic else "varies"
    if d.cosine is None:
        return "exact" if d.allclose else "-"
    top1 = f" top1 {d.top1_agreement:.3f}" if d.top1_agreement is not None else ""
    return f"cos {d.cosine:.4f}{top1}" + (" =" if d.allclose else "")


def fix_tables(session: FixSession) -> list[Any]:
    """Rich renderables for `dsprof fix` (the CLI prints them)."""
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    cand = Table(title="Recipes considered", title_justify="left")
    for col in ("recipe", "applies", "risk", "why"):
        cand.add_column(col)
    for c in session.candidates:
        cand.add_row(
            c.recipe,
            "yes" if c.applies else "no",
            c.risk,
            c.reason + (" (forced)" if c.forced else ""),
        )
    parts.append(cand)

    b: StepSummary = session.baseline
    table = Table(title="Before / after (reference run vs each trial)", title_justify="left")
    for col in (
        "run",
        "p50 ms",
        "p99 ms",
        "steps/s",
        "peak RSS MB",
        "speedup [95% CI]",
        "drift",
        "verdict",
    ):
        table.add_column(col)
    table.add_row(
        "baseline",
        _ms(b.p50_ns),
        _ms(b.p99_ns),
        f"{b.throughput_per_s:.2f}" if b.throughput_per_s else "-",
        _mb(b.peak_rss_bytes),
        "1.00",
        "-",
        "",
    )
    for t in session.trials:
        v, m = t.verdict, t.metrics
        speed = (
            f"x{v.speedup:.2f} [{v.ci95[0]:.2f}, {v.ci95[1]:.2f}]"
            if v and v.ci95 and v.speedup
            else "-"
        )
        verdict = Text(
            "accepted" if v and v.accepted else (v.outcome if v else t.status),
            style="green" if v and v.accepted else "yellow",
        )
        table.add_row(
            ("+ " if t.combined else "") + "+".join(t.recipes),
            _ms(m.p50_ns),
            _ms(m.p99_ns),
            f"{m.throughput_per_s:.2f}" if m.throughput_per_s else "-",
            _mb(m.peak_rss_bytes),
            speed,
            _drift(t),
            verdict,
        )
    parts.append(table)
    for t in session.trials:
        parts.append(
            Text(
                f"  {'+'.join(t.recipes)}: "
                + (t.verdict.reason if t.verdict else t.error or t.status)
            )
        )
    if session.reference_check:
        parts.append(Text(f"  noise: {session.reference_check}"))
    parts.append(Text(f"accepted: {', '.join(session.accepted) or 'none'}", style="bold"))
    if session.apply is not None:
        a = session.apply
        if a.diff:
            from rich.syntax import Syntax

            parts.append(Syntax(a.diff, "diff", theme="ansi_dark"))
        for change in a.changes:
            if change.manual:
                parts.append(
                    Text(
                        f"by hand ({change.recipe}): {change.code}  [{change.reason}]",
                        style="yellow",
                    )
                )
        if a.backup:
            parts.append(Text(f"backup: {a.backup}"))
        parts.append(Text(a.check_reason))
    baseline = RunPaths(Path(session.baseline_run))
    parts.append(Text(f"session: {baseline.fix_session}   trials: {baseline.trials_dir}/"))
    return parts
