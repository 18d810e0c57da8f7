"""The report's view-model: everything a renderer shows about one run, as plain data.

The HTML report, the markdown summary and the dashboard all render this one object, so they
agree on every number, and tests pin it with golden files (tests/golden/). It holds formatted
strings next to the raw numbers, never markup: escaping is the renderer's job.
Deterministic: the same run folder gives the same view-model (no clocks, no random ids).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from dsprof.core.findings import FindingsDocument
from dsprof.core.manifest import StepSummary
from dsprof.core.steps import StepStats
from dsprof.report.evidence import EvidenceRow

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData

VIEW_MODEL_VERSION = 3


class Kpi(BaseModel):
    """One headline number: a label, its formatted value, and the raw value for sorting."""

    key: str
    label: str
    value: str
    raw: float | None = None
    note: str = Field(default="", description="a second figure shown under it (model time)")


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
    action: str = Field(default="", description="where, what, the change (dsprof.report.actions)")
    action_command: str = Field(default="", description="the `dsprof fix` command that tests it")
    where: str = Field(default="", description="file:line the action names")


class CollectorRow(BaseModel):
    """Whether one collector ran, and why not."""

    name: str
    ok: bool
    reason: str


class FixBanner(BaseModel):
    """The fix session's headline: what the best measured change gives, and how sure that is."""

    outcome: str = Field(description="'win' when a change was accepted, else 'no-win'")
    headline: str = Field(description="'dataloader: 708 ms → 240 ms per iteration'")
    interval_text: str = Field(default="", description="95 % interval of the after figure")
    speedup_text: str = ""
    drift_text: str = ""
    memory_text: str = ""
    noise_state: str = Field(default="", description="stable, load-changed, too-wide or ''")
    noise_text: str = ""
    diff: str = ""
    diff_label: str = ""
    command: str = Field(default="", description="what to run next")


class FixView(BaseModel):
    """A fix session (fix.json in the baseline run folder), flattened for tables."""

    available: bool = False
    banner: FixBanner | None = None
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
    target_display: str = Field(default="", description="repository-relative target path")
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
    steps: StepSummary = Field(description="the run's key numbers (dsprof.core.manifest)")
    steps_source: str = Field(default="", description="run.json summary, or the run's tables")
    step_definition: str = Field(default="", description="what a step is, in one sentence")
    model_text: str = Field(default="", description="'model 3.2 ms of a 40 ms iteration'")
    findings: list[FindingView]
    analyzers_failed: list[tuple[str, str]]
    findings_state: str = Field(description="'analysed', 'not analysed' or an error sentence")
    ranks: list[int]
    fix: FixView


def run_numbers(run: RunData) -> tuple[StepSummary, str]:
    """The run's key numbers and where they come from (RunFacts.steps: run.json's summary, or
    computed the same way from the run's tables)."""
    return run.facts.steps, run.facts.steps_source


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


def model_text(stats: StepStats, which: str = "p50") -> str:
    """'model 3.21 ms of a 40.2 ms iteration' (empty when the run has no model figure)."""
    model = stats.model_p50_ns if which == "p50" else stats.model_p99_ns
    step = stats.p50_ns if which == "p50" else stats.p99_ns
    if model is None or step is None or stats.basis != "iterations":
        return ""
    return f"model {format_ns(model)} of a {format_ns(step)} iteration"


def traced_text(stats: StepStats) -> str:
    """'; the 5 traced ones left out, since the profiler slows them', or how many measured steps it
    recorded when too few others were left to leave them out; "" for an untraced run."""
    if stats.traced_excluded:
        return f"; the {stats.traced_excluded} traced ones left out, since the profiler slows them"
    if stats.traced_included:
        return (
            f"; {stats.traced_included} of those measured ran under the profiler, which slows"
            " them: too few others to leave them out"
        )
    return ""


def step_definition(stats: StepStats) -> str:
    """One sentence saying what a step is in this run's figures."""
    module = stats.module or "the model"
    warm = f"; the first {stats.steps_excluded} left out as warm-up" if stats.steps_excluded else ""
    warm += traced_text(stats)
    if stats.basis == "iterations":
        return (
            f"An iteration is timed start to start: from one {module} call to the next, so the "
            f"time between calls counts ({stats.count} iterations{warm}). "
            "Throughput is iterations completed over the time they span."
        )
    if stats.basis == "markers":
        return f"An iteration is the time between two dsprof.step() calls ({stats.count}{warm})."
    if stats.basis == "model-calls":
        return f"One {module} call: too few calls to time an iteration start to start."
    if stats.basis == "concurrent-calls":
        return (
            f"Each {module} call is a step, timed by its own duration: calls from several threads "
            f"overlap, so there is no iteration to time start to start ({stats.count} calls"
            f"{warm}). Throughput is calls completed over the time they cover together."
        )
    return "Steps are model calls (recorded before dsprof timed iterations start to start)."


def format_rate(per_s: float | None) -> str:
    """A throughput to 3 significant digits."""
    return "n/a" if per_s is None else f"{per_s:.3g}"


def build_kpis(numbers: StepSummary) -> list[Kpi]:
    """Headline numbers; a metric that was not collected is left out, never shown as 0."""
    n = numbers
    label = n.label
    kpis = [
        Kpi(
            key="steps",
            label=f"{label}s",
            value=str(n.count),
            raw=float(n.count),
            # the figures' n, when warm-up or traced iterations were left out
            note=f"{n.steps_measured} measured" if n.steps_measured != n.count else "",
        ),
        Kpi(
            key="p50",
            label=f"{label} p50",
            value=format_ns(n.p50_ns),
            raw=n.p50_ns,
            note=f"model {format_ns(n.model_p50_ns)}" if model_text(n) else "",
        ),
        Kpi(
            key="p99",
            label=f"{label} p99",
            value=format_ns(n.p99_ns),
            raw=n.p99_ns,
            note=f"model {format_ns(n.model_p99_ns)}" if model_text(n, "p99") else "",
        ),
    ]
    if n.throughput_per_s is not None:
        kpis.append(
            Kpi(
                key="throughput",
                label=f"{label}s / s",
                value=format_rate(n.throughput_per_s),
                raw=n.throughput_per_s,
            )
        )
    if n.peak_rss_bytes is not None:
        rss = float(n.peak_rss_bytes)
        kpis.append(Kpi(key="peak_rss", label="peak RSS", value=format_bytes(rss), raw=rss))
    if n.mean_cpu_pct is not None:
        cpu = n.mean_cpu_pct
        kpis.append(Kpi(key="cpu", label="mean CPU", value=f"{cpu:.0f} %", raw=round(cpu, 3)))
    if n.mean_gpu_util_pct is not None:
        gpu = n.mean_gpu_util_pct
        kpis.append(
            Kpi(key="gpu_util", label="mean GPU util", value=f"{gpu:.0f} %", raw=round(gpu, 3))
        )
    if n.peak_cuda_allocated_bytes is not None:
        cuda = float(n.peak_cuda_allocated_bytes)
        kpis.append(
            Kpi(key="peak_cuda", label="peak CUDA allocated", value=format_bytes(cuda), raw=cuda)
        )
    return kpis


def finding_views(doc: FindingsDocument, run: RunData | None = None) -> list[FindingView]:
    """Findings sorted by impact, evidence in human units, each with its action sentence."""
    from dsprof.report.actions import display_paths, finding_action, fix_command
    from dsprof.report.evidence import human_evidence

    manifest = run.manifest if run is not None else None
    # pages and pull requests are read away from the run's directory: repository-relative
    command = fix_command(manifest, repo_relative=True)
    cwd = manifest.cwd if manifest is not None else None
    views = []
    for f in doc.sorted().findings:
        rows = []
        for e in f.evidence:
            h = human_evidence(e)
            rows.append(h.model_copy(update={"source": display_paths(h.source, cwd)}))
        action = finding_action(f, run, command)
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
                action=action.sentence,
                action_command=action.command,
                where=action.where,
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
    facts = run.facts
    used = "used" if facts.uses_device or facts.uses_accelerator else "not used by the steps"
    rows.append(
        ("device", facts.device.label + ("" if facts.device.kind == "cpu" else f", {used}"))
    )
    if facts.usable_cores is not None:
        rows.append(("usable cores", f"{facts.usable_cores:g} ({facts.usable_cores_source})"))
    if env.torch_num_threads is not None:
        rows.append(("torch threads", str(env.torch_num_threads)))
    return rows


def _utc(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def build_view(run: RunData, fix: FixView | None = None) -> ReportView:
    """The view-model of one run; `fix` comes from dsprof.report.fix_view when there is a session."""
    from dsprof.core.errors import RunFolderError
    from dsprof.report.actions import display_path

    m = run.manifest
    if m is None:
        raise RunFolderError("run.json is missing: cannot report this folder", path=run.paths.root)
    numbers, numbers_source = run_numbers(run)
    findings: list[FindingView] = []
    failed: list[tuple[str, str]] = []
    try:
        doc = run.findings
    except RunFolderError as e:
        state = str(e)
    else:
        if doc is None and m.status == "running":
            state = "findings come when the run ends (the analyzers read the finished folder)"
        elif doc is None:
            state = "not analysed (run `dsprof analyze` on the run folder)"
        else:
            state = "analysed"
            findings = finding_views(doc, run)
            failed = sorted(doc.analyzers_failed.items())
    if m.end_ns is not None:
        duration = format_ns(m.end_ns - m.start_ns)
    else:
        duration = "still running" if m.status == "running" else "duration unknown"
    return ReportView(
        run_id=m.run_id,
        title=f"dsprof report: {m.run_id}",
        target=m.target,
        target_display=display_path(m.target, m.cwd),
        argv=list(m.argv),
        status=m.status,
        exit_code=m.exit_code,
        error=m.error,
        started_utc=_utc(m.start_ns),
        duration_text=duration,
        parent_run=m.parent_run,
        recipes=list(m.recipes),
        modules=list(run.facts.root_modules),
        environment=_environment_rows(run),
        collectors=[
            CollectorRow(name=name, ok=c.ok, reason=c.reason)
            for name, c in sorted(m.collectors.items())
        ],
        kpis=build_kpis(numbers),
        steps=numbers,
        steps_source=numbers_source,
        step_definition=step_definition(numbers) if numbers.count else "",
        model_text=model_text(numbers),
        findings=findings,
        analyzers_failed=failed,
        findings_state=state,
        ranks=sorted(run.ranks),
        fix=fix or FixView(),
    )
