"""The terminal view of a fix session: candidates, before/after, applied changes (rich lists that
wrap at the terminal's width)."""

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


def _numbers(m: StepSummary) -> str:
    """'p50 12.3 ms · p99 13.0 ms · 81.20 it/s · RSS 512 MB' (what was measured: iterations,
    start to start, as every figure; the table's title says so)."""
    parts = [f"p50 {_ms(m.p50_ns)} ms" if m.p50_ns else "p50 -"]
    if m.p99_ns:
        parts.append(f"p99 {_ms(m.p99_ns)} ms")
    if m.throughput_per_s:
        parts.append(f"{m.throughput_per_s:.2f} it/s")
    if m.peak_rss_bytes is not None:
        parts.append(f"RSS {_mb(m.peak_rss_bytes)} MB")
    return " · ".join(parts)


def _drift(t: Any) -> str:
    d = t.verdict.drift if t.verdict else None
    if d is None:
        return "-"
    if d.metric == "tokens" and d.token_agreement is not None:
        return f"tokens {d.token_agreement:.3f} of {d.tokens_compared}"
    if d.deterministic is not None:
        return "deterministic" if d.deterministic else "varies"
    if d.cosine is None:
        return "exact" if d.allclose else "-"
    top1 = f" top1 {d.top1_agreement:.3f}" if d.top1_agreement is not None else ""
    return f"cos {d.cosine:.4f}{top1}" + (" =" if d.allclose else "")


def diff_text(diff: str) -> Any:
    """A unified diff as rich Text that is never wrapped or cropped (the CLI prints it with
    soft_wrap): every line whole, at any terminal width, so it can be read and copied."""
    from rich.text import Text

    text = Text(no_wrap=True, overflow="ignore")
    for line in diff.splitlines(keepends=True):
        style = (
            "bold"
            if line.startswith(("+++", "---"))
            else "green"
            if line.startswith("+")
            else "red"
            if line.startswith("-")
            else "cyan"
            if line.startswith("@@")
            else ""
        )
        text.append(line, style=style)
    return text


def fix_tables(session: FixSession) -> list[Any]:
    """Rich renderables for `dsprof fix` (the CLI prints them): lists that wrap at the
    terminal's width, 80 columns included."""
    from rich.text import Text

    from dsprof.report.text import WrappedRows

    parts: list[Any] = []
    parts.append(
        WrappedRows(
            "Recipes considered",
            [
                (
                    c.recipe,
                    f"{'yes' if c.applies else 'no':<3}  {c.risk:<11}  "
                    + c.reason
                    + (" (forced)" if c.forced else ""),
                    "" if c.applies else "dim",
                )
                for c in session.candidates
            ],
        )
    )

    b: StepSummary = session.baseline
    rows = [("reference", _numbers(b), "")]
    for t in session.trials:
        v, m = t.verdict, t.metrics
        speed = (
            f"x{v.speedup:.2f} [{v.ci95[0]:.2f}-{v.ci95[1]:.2f}]"
            if v and v.ci95 and v.speedup
            else "speedup -"
        )
        if v and v.whole_run is not None:
            w = v.whole_run
            speed += f" per call · whole run x{w.speedup:.2f} over {w.calls} calls"
        verdict = "accepted" if v and v.accepted else (v.outcome if v else t.status)
        rows.append(
            (
                ("+ " if t.combined else "") + "+".join(t.recipes),
                f"{_numbers(m)} · {speed} · drift {_drift(t)} · {verdict}",
                "green" if v and v.accepted else "",
            )
        )
    table = WrappedRows(
        "Before / after, per iteration (start to start): the untraced reference run vs each "
        "trial; 95% interval",
        rows,
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
            parts.append(diff_text(a.diff))
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
