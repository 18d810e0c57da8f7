"""Compare two runs: what changed between them, the iteration-time change with its noise
interval, KPI deltas, findings gained, lost and changed, and the regression gate.

The iteration p50 change is median(B) / median(A) - 1 with a percentile-bootstrap 95 % interval
(dsprof.core.steps.median_ratio_interval over each run's measured iterations), so two runs of the
same script on a busy machine read "within noise" instead of "+49 %". `dsprof compare A B
--fail-above 5%` exits 1 only when the whole interval lies above +5 %: a change whose interval
reaches below the threshold is not called a regression. The KPIs are the view-model's
(dsprof.report.view_model.build_kpis), so the terminal, the HTML report and the dashboard agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dsprof.core.errors import RunFolderError, UsageError
from dsprof.core.steps import MIN_STEPS, measured_iterations, median_ratio_interval
from dsprof.report.view_model import build_kpis, run_numbers

if TYPE_CHECKING:
    from rich.console import RenderableType

    from dsprof.core.manifest import RunManifest
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
# the interval of the iteration p50 change (DESIGN.md: bootstrap 95 % intervals)
CONFIDENCE = 0.95


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


@dataclass(frozen=True)
class IterationChange:
    """B's iteration p50 against A's: the change and its bootstrap interval, in percent."""

    change_pct: float
    low_pct: float
    high_pct: float
    a_iterations: int
    b_iterations: int

    @property
    def verdict(self) -> str:
        """'slower', 'faster' or 'within noise' (the interval holds no change)."""
        if self.low_pct > 0:
            return "slower"
        if self.high_pct < 0:
            return "faster"
        return "within noise"

    @property
    def text(self) -> str:
        """'+12.3 % [+8.1 %, +16.0 %]: slower'."""
        return (
            f"{self.change_pct:+.1f} % [{self.low_pct:+.1f} %, {self.high_pct:+.1f} %] "
            f"(95 % interval, {self.a_iterations} vs {self.b_iterations} iterations): "
            f"{self.verdict}"
        )


@dataclass(frozen=True)
class FindingChange:
    """A finding category in both runs whose severity or impact moved."""

    category: str
    a_severity: str
    b_severity: str
    a_impact: float
    b_impact: float

    @property
    def text(self) -> str:
        sev = (
            f"{self.a_severity} → {self.b_severity}"
            if self.a_severity != self.b_severity
            else self.a_severity
        )
        return f"{self.category}: {sev}, impact {self.a_impact:.0%} → {self.b_impact:.0%}"


@dataclass
class Comparison:
    """Run A (the reference) against run B (the candidate)."""

    a_id: str
    b_id: str
    metrics: list[MetricDelta]
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    both: list[str] = field(default_factory=list)
    changed_findings: list[FindingChange] = field(default_factory=list)
    iteration: IterationChange | None = None
    iteration_note: str = ""
    what_changed: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def metric(self, key: str) -> MetricDelta | None:
        return next((m for m in self.metrics if m.key == key), None)

    def p50_regression_pct(self) -> float | None:
        """How much slower B's iteration p50 is than A's, in percent (negative: faster)."""
        p50 = self.metric("p50")
        return p50.change_pct if p50 is not None else None

    def fails(self, threshold_pct: float) -> bool:
        """True when B's iteration p50 regresses beyond threshold_pct with 95 % confidence:
        the interval's lower end lies above the threshold. Too few iterations is an error."""
        if self.iteration is None:
            raise RunFolderError(
                f"cannot gate on iteration time: {self.iteration_note or 'no iterations'} "
                f"(runs {self.a_id} and {self.b_id})"
            )
        return self.iteration.low_pct > threshold_pct

    @property
    def headline(self) -> str:
        """The verdict line: what B's iteration time did against A's."""
        if self.iteration is None:
            return f"iteration p50: {self.iteration_note}"
        return f"iteration p50 {self.iteration.text}"


def _findings(run: RunData) -> dict[str, tuple[str, float]]:
    """category -> (severity, impact) of the run's top finding of that category."""
    try:
        doc = run.findings
    except RunFolderError:
        return {}
    out: dict[str, tuple[str, float]] = {}
    for f in doc.sorted().findings if doc is not None else []:
        out.setdefault(f.category, (f.severity, f.impact))
    return out


def _run_id(run: RunData) -> str:
    return run.manifest.run_id if run.manifest is not None else run.paths.root.name


def run_iterations(run: RunData) -> np.ndarray:
    """The run's measured iteration times (warm-up and traced ones left out, as for every
    figure: dsprof.core.steps); a multi-rank job's slowest rank (the job runs at its pace)."""
    warmup = run.manifest.warmup_steps if run.manifest is not None else 1
    if run.steps is not None and len(run.steps):
        return measured_iterations(run.steps, warmup)[1].durations_ns
    ranks = [
        measured_iterations(r.steps, warmup)[1].durations_ns
        for _, r in sorted(run.ranks.items())
        if r.steps is not None and len(r.steps)
    ]
    ranks = [d for d in ranks if len(d)]
    return max(ranks, key=lambda d: float(np.median(d))) if ranks else np.array([], np.int64)


def iteration_change(a: np.ndarray, b: np.ndarray) -> tuple[IterationChange | None, str]:
    """The iteration p50 change of B against A with its interval, or why there is none."""
    if min(len(a), len(b)) < MIN_STEPS:
        return None, (
            f"too few iterations to judge ({len(a)} in A, {len(b)} in B; at least {MIN_STEPS} each)"
        )
    ratio, lo, hi = median_ratio_interval(b, a, confidence=CONFIDENCE)
    change = IterationChange(
        change_pct=(ratio - 1) * 100,
        low_pct=(lo - 1) * 100,
        high_pct=(hi - 1) * 100,
        a_iterations=len(a),
        b_iterations=len(b),
    )
    return change, ""


def what_changed(a: RunData, b: RunData) -> list[tuple[str, str, str]]:
    """(what, in A, in B) for the command line, the software, the machine and the recipes."""
    ma, mb = a.manifest, b.manifest
    if ma is None or mb is None:
        return []
    rows: list[tuple[str, str, str]] = []

    def differ(name: str, va: object, vb: object) -> None:
        ta = "" if va is None else str(va)
        tb = "" if vb is None else str(vb)
        if ta != tb:
            rows.append((name, ta or "-", tb or "-"))

    differ("target", target_path(ma), target_path(mb))
    differ("working directory", ma.cwd, mb.cwd)
    differ("arguments", " ".join(ma.argv[1:]), " ".join(mb.argv[1:]))
    differ("recipes", ", ".join(ma.recipes), ", ".join(mb.recipes))
    ea, eb = ma.environment, mb.environment
    if ea is not None and eb is not None:
        for name in ("torch", "python", "cuda", "driver", "hostname", "cpu_model"):
            differ(name, getattr(ea, name), getattr(eb, name))
        differ("GPUs", ", ".join(g.name for g in ea.gpus), ", ".join(g.name for g in eb.gpus))
        differ("torch threads", ea.torch_num_threads, eb.torch_num_threads)
        differ("usable cores", ea.usable_cores, eb.usable_cores)
        for key in sorted(set(ea.env_vars) | set(eb.env_vars)):
            differ(f"${key}", ea.env_vars.get(key), eb.env_vars.get(key))
    for key in sorted(set(ma.options) | set(mb.options)):
        differ(f"option {key}", ma.options.get(key), mb.options.get(key))
    return rows


def target_path(m: RunManifest) -> str:
    """The script a run ran, as one path whichever directory it was started from (a module's
    name as it is)."""
    if m.kind != "script":
        return m.target
    return os.path.normpath(os.path.join(m.cwd, m.target))


def _target_warning(a: RunData, b: RunData) -> list[str]:
    ma, mb = a.manifest, b.manifest
    if ma is None or mb is None:
        return []
    if Path(ma.target).name != Path(mb.target).name:
        return [
            f"the runs are of different targets ({ma.target} and {mb.target}): the numbers "
            "compare two programs, not a change to one"
        ]
    if target_path(ma) != target_path(mb):
        return [f"same script name, different paths ({target_path(ma)} and {target_path(mb)})"]
    return []


def compare_runs(a: RunData, b: RunData) -> Comparison:
    """B against A: KPI deltas, the iteration change with its interval, what changed between
    the runs, and the findings each has."""
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
    fa, fb = _findings(a), _findings(b)
    changed = [
        FindingChange(c, fa[c][0], fb[c][0], fa[c][1], fb[c][1])
        for c in sorted(set(fa) & set(fb))
        if fa[c][0] != fb[c][0] or round(fa[c][1], 2) != round(fb[c][1], 2)
    ]
    change, note = iteration_change(run_iterations(a), run_iterations(b))
    return Comparison(
        a_id=_run_id(a),
        b_id=_run_id(b),
        metrics=metrics,
        only_a=sorted(set(fa) - set(fb)),
        only_b=sorted(set(fb) - set(fa)),
        both=sorted(set(fa) & set(fb)),
        changed_findings=changed,
        iteration=change,
        iteration_note=note,
        what_changed=what_changed(a, b),
        warnings=_target_warning(a, b),
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


def comparison_renderables(
    cmp: Comparison, threshold_pct: float | None = None
) -> list[RenderableType]:
    """`dsprof compare` for the terminal: warnings, the verdict, what changed, the KPI table
    and the findings that moved."""
    from rich.table import Table
    from rich.text import Text

    out: list[RenderableType] = [Text(f"warning: {w}", style="yellow") for w in cmp.warnings]
    style = {"slower": "red", "faster": "green"}.get(
        cmp.iteration.verdict if cmp.iteration else "", ""
    )
    out.append(Text(f"B vs A: {cmp.headline}", style=f"bold {style}".strip()))
    if cmp.what_changed:
        changed = Table(title="What changed", title_justify="left", box=None, padding=(0, 1))
        for col in ("", "A", "B"):
            changed.add_column(col, overflow="fold")
        for name, va, vb in cmp.what_changed:
            changed.add_row(Text(name), Text(va), Text(vb))
        out.append(changed)
    else:
        out.append(Text("What changed: nothing recorded (same command, software and machine)"))
    # names come from run folders: Text() keeps rich from reading them as markup
    table = Table(title=Text(f"{cmp.a_id} (A)  vs  {cmp.b_id} (B)"))
    table.add_column("metric")
    table.add_column("A", justify="right")
    table.add_column("B", justify="right")
    table.add_column("change", justify="right")
    for m in cmp.metrics:
        change = m.change_pct
        colour = {"better": "green", "worse": "red"}.get(m.verdict, "")
        text = "n/a" if change is None else f"{change:+.1f} %"
        if m.key == "p50" and threshold_pct is not None and change is not None:
            text += f" (gate {threshold_pct:g} %)"
        table.add_row(Text(m.label), Text(m.a_text), Text(m.b_text), Text(text, style=colour))
    out.append(table)
    for label, cats in (("findings only in A", cmp.only_a), ("findings only in B", cmp.only_b)):
        if cats:
            out.append(Text(f"{label}: {', '.join(cats)}"))
    if cmp.changed_findings:
        out.append(Text("findings that moved: " + "; ".join(c.text for c in cmp.changed_findings)))
    return out
