"""The report's view-model: everything a renderer shows about one run, as plain data.

The HTML report, the markdown summary and the dashboard all render this one object, so they
agree on every number, and tests pin it with golden files (tests/golden/). It holds formatted
strings next to the raw numbers, never markup: escaping is the renderer's job.
Deterministic: the same run folder gives the same view-model (no clocks, no random ids).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from dsprof.core.findings import FindingsDocument

if TYPE_CHECKING:
    import pandas as pd

    from dsprof.store.run_store import RunData

VIEW_MODEL_VERSION = 1


class Kpi(BaseModel):
    """One headline number: a label, its formatted value, and the raw value for sorting."""

    key: str
    label: str
    value: str
    raw: float | None = None


class EvidenceRow(BaseModel):
    """One evidence entry of a finding, formatted for a table."""

    metric: str
    value: str
    threshold: str
    window: str
    source: str


class FindingView(BaseModel):
    """A finding as the report shows it."""

    category: str
    severity: str
    title: str
    impact: float
    impact_text: str
    confidence_text: str
    analyzer: str
    detail: str
    recipes: list[str]
    evidence: list[EvidenceRow]


class CollectorRow(BaseModel):
    """Whether one collector ran, and why not."""

    name: str
    ok: bool
    reason: str


class StepStats(BaseModel):
    """Step-time statistics in nanoseconds (None when the run has no steps)."""

    count: int = 0
    p50_ns: int | None = None
    p99_ns: int | None = None
    mean_ns: int | None = None
    throughput_per_s: float | None = None
    source: str = Field(default="", description="run.json summary, or steps.parquet")


class FixView(BaseModel):
    """A fix session (fix.json in the baseline run folder), flattened for tables."""

    available: bool = False
    state: str = Field(default="", description="why there is no session, or an error sentence")
    script: str = ""
    baseline_p50_text: str = ""
    accepted: list[str] = Field(default_factory=list)
    trials: list[dict[str, Any]] = Field(default_factory=list)
    candidates: list[dict[str, Any]] = Field(default_factory=list)
    applied_diff: str = ""
    apply_notes: list[str] = Field(default_factory=list)


class ReportView(BaseModel):
    """Everything a report shows about one run."""

    view_model_version: int = VIEW_MODEL_VERSION
    run_id: str
    title: str
    target: str
    argv: list[str]
    status: str
    exit_code: int | None
    error: str | None
    started_utc: str
    duration_text: str
    parent_run: str | None
    recipes: list[str]
    modules: list[str] = Field(description="class names of the root modules the steps called")
    environment: list[tuple[str, str]]
    collectors: list[CollectorRow]
    kpis: list[Kpi]
    steps: StepStats
    findings: list[FindingView]
    analyzers_failed: list[tuple[str, str]]
    findings_state: str = Field(description="'analysed', 'not analysed' or an error sentence")
    ranks: list[int]
    fix: FixView


def step_stats(run: RunData) -> StepStats:
    """Step statistics: run.json's summary when the runner wrote one, else steps.parquet."""
    summary = run.manifest.summary if run.manifest is not None else None
    if summary is not None and summary.count and summary.p50_ns is not None:
        return StepStats(
            count=summary.count,
            p50_ns=summary.p50_ns,
            p99_ns=summary.p99_ns,
            mean_ns=summary.mean_ns,
            throughput_per_s=summary.throughput_per_s,
            source="run.json summary",
        )
    return steps_table_stats(run.steps)


def steps_table_stats(steps: pd.DataFrame | None) -> StepStats:
    """p50 / p99 / mean over every step of a steps.parquet table (nearest-rank percentiles)."""
    if steps is None or len(steps) == 0 or "duration_ns" not in steps:
        return StepStats()
    durations = sorted(int(d) for d in steps["duration_ns"])
    n = len(durations)
    mean = sum(durations) / n
    return StepStats(
        count=n,
        p50_ns=nearest_rank(durations, 50),
        p99_ns=nearest_rank(durations, 99),
        mean_ns=round(mean),
        throughput_per_s=round(1e9 / mean, 3) if mean > 0 else None,
        source="steps.parquet",
    )


def nearest_rank(sorted_values: list[int], pct: float) -> int:
    """The nearest-rank percentile: an observed value, so it is exact and reproducible."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def format_ns(ns: float | None) -> str:
    """A duration with a unit a person reads at a glance: 812 µs, 12.3 ms, 4.56 s."""
    if ns is None:
        return "n/a"
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.3g} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.3g} ms"
    return f"{ns / 1e9:.3g} s"


def format_bytes(n: float | None) -> str:
    """Bytes in binary units: 512 B, 3.2 MiB, 1.50 GiB."""
    if n is None:
        return "n/a"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def format_value(v: object) -> str:
    """An evidence value: floats to 3 significant digits, the rest as text."""
    if isinstance(v, float):
        return f"{v:.3g}"
    return "" if v is None else str(v)


def _peak(frame: pd.DataFrame | None, column: str) -> float | None:
    if frame is None or column not in frame or len(frame) == 0:
        return None
    value = frame[column].max()
    return None if value != value else float(value)  # NaN: collected but refused


def _mean(frame: pd.DataFrame | None, column: str) -> float | None:
    if frame is None or column not in frame or len(frame) == 0:
        return None
    value = frame[column].mean()
    return None if value != value else float(value)


def build_kpis(run: RunData, stats: StepStats) -> list[Kpi]:
    """Headline numbers; a metric that was not collected is left out, never shown as 0."""
    summary = run.manifest.summary if run.manifest is not None else None
    kpis = [
        Kpi(key="steps", label="steps", value=str(stats.count), raw=float(stats.count)),
        Kpi(key="p50", label="step p50", value=format_ns(stats.p50_ns), raw=stats.p50_ns),
        Kpi(key="p99", label="step p99", value=format_ns(stats.p99_ns), raw=stats.p99_ns),
    ]
    if stats.throughput_per_s is not None:
        kpis.append(
            Kpi(
                key="throughput",
                label="steps / s",
                value=f"{stats.throughput_per_s:.3g}",
                raw=stats.throughput_per_s,
            )
        )
    rss = _peak(run.host, "proc_rss_bytes")
    if rss is None and summary is not None and summary.peak_rss_bytes is not None:
        rss = float(summary.peak_rss_bytes)
    if rss is not None:
        kpis.append(Kpi(key="peak_rss", label="peak RSS", value=format_bytes(rss), raw=rss))
    cpu = _mean(run.host, "proc_cpu_pct")
    if cpu is not None:
        kpis.append(Kpi(key="cpu", label="mean CPU", value=f"{cpu:.0f} %", raw=round(cpu, 3)))
    gpu = _mean(run.gpu, "util_gpu_pct")
    if gpu is not None:
        kpis.append(
            Kpi(key="gpu_util", label="mean GPU util", value=f"{gpu:.0f} %", raw=round(gpu, 3))
        )
    cuda = _peak(run.cuda_memory, "allocated_peak_bytes")
    if cuda is None:
        cuda = _peak(run.cuda_memory, "allocated_bytes")
    if cuda is not None:
        kpis.append(
            Kpi(key="peak_cuda", label="peak CUDA allocated", value=format_bytes(cuda), raw=cuda)
        )
    return kpis


def finding_views(doc: FindingsDocument) -> list[FindingView]:
    """Findings sorted by impact, evidence formatted."""
    views = []
    for f in doc.sorted().findings:
        rows = [
            EvidenceRow(
                metric=e.metric,
                value=f"{format_value(e.value)}{' ' + e.unit if e.unit else ''}",
                threshold="" if e.threshold is None else format_value(e.threshold),
                window=e.window,
                source=e.source,
            )
            for e in f.evidence
        ]
        views.append(
            FindingView(
                category=f.category,
                severity=f.severity,
                title=f.title,
                impact=f.impact,
                impact_text=f"{f.impact:.0%}",
                confidence_text=f"{f.confidence:.0%}",
                analyzer=f.analyzer,
                detail=f.detail,
                recipes=list(f.recipes),
                evidence=rows,
            )
        )
    return views


def _environment_rows(run: RunData) -> list[tuple[str, str]]:
    env = run.manifest.environment if run.manifest is not None else None
    if env is None:
        return []
    rows = [
        ("host", env.hostname),
        ("platform", env.platform),
        ("python", env.python),
        ("torch", env.torch or "n/a"),
        ("CUDA", env.cuda or "n/a"),
        ("driver", env.driver or "n/a"),
        ("CPU", f"{env.cpu_model} ({env.cpu_count_logical} logical)"),
    ]
    if env.memory_total_bytes is not None:
        rows.append(("memory", format_bytes(env.memory_total_bytes)))
    rows.extend((f"GPU {g.index}", g.name) for g in env.gpus)
    if env.torch_num_threads is not None:
        rows.append(("torch threads", str(env.torch_num_threads)))
    return rows


def root_modules(run: RunData) -> list[str]:
    """Class names of the outermost modules: child.json's root_modules, else steps.parquet."""
    names = [r.class_name for r in run.child.root_modules]
    if not names and run.steps is not None and "module" in run.steps:
        names = [str(m) for m in run.steps["module"].unique()]
    return sorted({n for n in names if n})


def _utc(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def build_view(run: RunData, fix: FixView | None = None) -> ReportView:
    """The view-model of one run; `fix` comes from dsprof.report.fix_view when there is a session."""
    from dsprof.core.errors import RunFolderError

    m = run.manifest
    if m is None:
        raise RunFolderError("run.json is missing: cannot report this folder", path=run.paths.root)
    stats = step_stats(run)
    findings: list[FindingView] = []
    failed: list[tuple[str, str]] = []
    try:
        doc = run.findings
    except RunFolderError as e:
        state = str(e)
    else:
        if doc is None:
            state = "not analysed (run `dsprof analyze` on the run folder)"
        else:
            state = "analysed"
            findings = finding_views(doc)
            failed = sorted(doc.analyzers_failed.items())
    if m.end_ns is not None:
        duration = format_ns(m.end_ns - m.start_ns)
    else:
        duration = "still running" if m.status == "running" else "duration unknown"
    return ReportView(
        run_id=m.run_id,
        title=f"dsprof report: {m.run_id}",
        target=m.target,
        argv=list(m.argv),
        status=m.status,
        exit_code=m.exit_code,
        error=m.error,
        started_utc=_utc(m.start_ns),
        duration_text=duration,
        parent_run=m.parent_run,
        recipes=list(m.recipes),
        modules=root_modules(run),
        environment=_environment_rows(run),
        collectors=[
            CollectorRow(name=name, ok=c.ok, reason=c.reason)
            for name, c in sorted(m.collectors.items())
        ],
        kpis=build_kpis(run, stats),
        steps=stats,
        findings=findings,
        analyzers_failed=failed,
        findings_state=state,
        ranks=sorted(run.ranks),
        fix=fix or FixView(),
    )
