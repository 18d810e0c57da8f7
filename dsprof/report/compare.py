"""Compare two runs: KPI deltas, findings gained and lost, and the step-time regression gate.

`dsprof compare A B --fail-above 5%` exits 1 when B's step-time p50 is more than 5 % above A's.
The numbers are the view-model's KPIs (dsprof.report.view_model.build_kpis), so the terminal
table, the HTML report and the dashboard's comparison page agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dsprof.core.errors import RunFolderError, UsageError
from dsprof.report.view_model import build_kpis, run_numbers

if TYPE_CHECKING:
    from pathlib import Path

    from rich.table import Table

    from dsprof.store.run_store import RunData, RunStore

# which way is better for each KPI: -1 lower is better, +1 higher is better, 0 neither
DIRECTION: dict[str, int] = {
    "steps": 0,
    "p50": -1,
    "p99": -1,
    "throughput": 1,
    "peak_rss": -1,
    "cpu": 0,
    "gpu_util": 0,
    "peak_cuda": -1,
}


@dataclass(frozen=True)
class MetricDelta:
    """One KPI in both runs; change_pct is (b - a) / a in percent."""

    key: str
    label: str
    a_text: str
    b_text: str
    a: float | None
    b: float | None
    direction: int

    @property
    def change_pct(self) -> float | None:
        if self.a is None or self.b is None or self.a == 0:
            return None
        return (self.b - self.a) / abs(self.a) * 100.0

    @property
    def verdict(self) -> str:
        """'better', 'worse' or '' (no direction, or no change)."""
        change = self.change_pct
        if change is None or self.direction == 0 or change == 0:
            return ""
        return "better" if change * self.direction > 0 else "worse"


@dataclass
class Comparison:
    """Run A (the reference) against run B (the candidate)."""

    a_id: str
    b_id: str
    metrics: list[MetricDelta]
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    both: list[str] = field(default_factory=list)

    def metric(self, key: str) -> MetricDelta | None:
        return next((m for m in self.metrics if m.key == key), None)

    def p50_regression_pct(self) -> float | None:
        """How much slower B's step p50 is than A's, in percent (negative: faster)."""
        p50 = self.metric("p50")
        return p50.change_pct if p50 is not None else None

    def fails(self, threshold_pct: float) -> bool:
        """True when B's step p50 regresses beyond threshold_pct; no step data is an error."""
        change = self.p50_regression_pct()
        if change is None:
            raise RunFolderError(
                f"cannot gate on step time: run {self.a_id} or {self.b_id} has no steps recorded"
            )
        return change > threshold_pct


def _categories(run: RunData) -> set[str]:
    try:
        doc = run.findings
    except RunFolderError:
        return set()
    return {f.category for f in doc.findings} if doc is not None else set()


def _run_id(run: RunData) -> str:
    return run.manifest.run_id if run.manifest is not None else run.paths.root.name


def compare_runs(a: RunData, b: RunData) -> Comparison:
    """KPI deltas of B against A and the finding categories each one has."""
    kpis_a = {k.key: k for k in build_kpis(run_numbers(a)[0])}
    kpis_b = {k.key: k for k in build_kpis(run_numbers(b)[0])}
    keys = [k for k in DIRECTION if k in kpis_a or k in kpis_b]
    metrics = [
        MetricDelta(
            key=k,
            label=(kpis_a.get(k) or kpis_b[k]).label,
            a_text=kpis_a[k].value if k in kpis_a else "n/a",
            b_text=kpis_b[k].value if k in kpis_b else "n/a",
            a=kpis_a[k].raw if k in kpis_a else None,
            b=kpis_b[k].raw if k in kpis_b else None,
            direction=DIRECTION[k],
        )
        for k in keys
    ]
    cat_a, cat_b = _categories(a), _categories(b)
    return Comparison(
        a_id=_run_id(a),
        b_id=_run_id(b),
        metrics=metrics,
        only_a=sorted(cat_a - cat_b),
        only_b=sorted(cat_b - cat_a),
        both=sorted(cat_a & cat_b),
    )


def parse_percent(text: str) -> float:
    """'5%', '5' or '2.5 %' -> 5.0 / 2.5; anything else is a UsageError."""
    raw = text.strip().removesuffix("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"--fail-above takes a percentage like 5% (got {text!r})") from None
    if value < 0 or value != value:
        raise UsageError(f"--fail-above must be a non-negative percentage (got {text!r})")
    return value


def compare_refs(ref_a: str | Path, ref_b: str | Path, store: RunStore | None = None) -> Comparison:
    """Load two runs (paths or ids) and compare them."""
    from dsprof.store.run_store import load_run

    return compare_runs(load_run(ref_a, store), load_run(ref_b, store))


def comparison_table(cmp: Comparison, threshold_pct: float | None = None) -> Table:
    """The `dsprof compare` terminal table: one row per KPI, B against A."""
    from rich.table import Table
    from rich.text import Text

    # names come from run folders: Text() keeps rich from reading them as markup
    table = Table(title=Text(f"{cmp.a_id} (A)  vs  {cmp.b_id} (B)"))
    table.add_column("metric")
    table.add_column("A", justify="right")
    table.add_column("B", justify="right")
    table.add_column("change", justify="right")
    for m in cmp.metrics:
        change = m.change_pct
        style = {"better": "green", "worse": "red"}.get(m.verdict, "")
        text = "n/a" if change is None else f"{change:+.1f} %"
        if m.key == "p50" and threshold_pct is not None and change is not None:
            text += f" (gate {threshold_pct:g} %)"
        table.add_row(Text(m.label), Text(m.a_text), Text(m.b_text), Text(text, style=style))
    for label, cats in (("findings only in A", cmp.only_a), ("findings only in B", cmp.only_b)):
        if cats:
            table.add_row(label, "", "", Text(", ".join(cats)))
    return table
