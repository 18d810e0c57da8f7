"""Terminal tables of a load run: steps, latency per class, SLOs. Returned, never printed."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from dsprof.core.load import LoadStep, LoadSummary, SloResult

SLO_STYLE = {"pass": "green", "fail": "bold red", "not-measured": "yellow"}


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def step_label(step: LoadStep) -> str:
    if step.mode == "closed-loop":
        return f"closed-loop x{step.concurrency}"
    return f"{_rate(step.offered_rate_per_s)} req/s"


def steps_table(summary: LoadSummary) -> Table:
    """One row per step: offered and achieved rate, latency percentiles, errors, goodput."""
    table = Table(title=f"{summary.url} ({summary.mode}, {summary.client})")
    for name in ("offered", "req/s", "p50", "p90", "p99", "p99.9", "max ms", "errors", "goodput/s"):
        table.add_column(name, justify="right", no_wrap=True)
    for s in summary.steps:
        lat = s.latency
        offered = step_label(s).replace(" req/s", "")
        table.add_row(
            Text(offered + ("!" if not s.valid else ""), style="" if s.valid else "bold red"),
            _rate(s.achieved_rate_per_s),
            _ms(lat.p50_ms),
            _ms(lat.p90_ms),
            _ms(lat.p99_ms),
            _ms(lat.p999_ms),
            _ms(lat.max_ms),
            str(s.errors),
            _rate(s.goodput_per_s),
        )
    return table


def step_notes(summary: LoadSummary) -> list[str]:
    """Lines under the steps table: errors by kind, invalid steps."""
    notes = []
    for s in summary.steps:
        if s.errors:
            kinds = ", ".join(f"{k}: {v}" for k, v in s.errors_by_status.items())
            notes.append(f"{step_label(s)}: errors {kinds}")
        if not s.valid:
            notes.append(f"{step_label(s)}! invalid: {s.invalid_reason}")
    return notes


def classes_table(step: LoadStep) -> Table | None:
    """Latency per priority class of one step (None when requests carried no class)."""
    if not step.classes:
        return None
    table = Table(title=f"Per priority class at {step_label(step)}")
    for name in ("class", "requests", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"):
        table.add_column(name, justify="left" if name == "class" else "right", no_wrap=True)
    for cls, lat in step.classes.items():
        table.add_row(cls, str(lat.count), _ms(lat.p50_ms), _ms(lat.p90_ms), _ms(lat.p99_ms),
                      _ms(lat.p999_ms), _ms(lat.max_ms))  # fmt: skip
    return table


def _value(r: SloResult, v: float | None) -> str:
    if v is None:
        return "-"
    text = f"{v:.1f}" if abs(v) < 1000 else f"{v:.0f}"
    return f"{text} {r.unit}".strip()


def slo_table(results: list[SloResult], title: str = "SLOs") -> Table:
    """Pass/fail per SLO with the measured value and its 95 % interval (notes as footnotes)."""
    table = Table(title=title)
    for name in ("SLO", "measured", "95% interval", "verdict"):
        table.add_column(name, no_wrap=True)
    for r in results:
        ci = (
            "-"
            if r.ci_low is None and r.ci_high is None
            else (
                f"[{_value(r, r.ci_low) if r.ci_low is not None else '?'}, "
                f"{_value(r, r.ci_high) if r.ci_high is not None else '?'}]"
            )
        )
        spec = r.spec + (" *" if r.note else "")
        table.add_row(
            spec, _value(r, r.measured), ci, Text(r.status.upper(), style=SLO_STYLE[r.status])
        )
    return table


def slo_notes(results: list[SloResult]) -> list[str]:
    """The footnotes of slo_table."""
    return [f"* {r.spec}: {r.note}" for r in results if r.note]
