"""The dashboard's pages: Dash components built from dsprof.report's view-model and figures.

Every string from a run folder goes into a component as a child or prop, which React renders as
text, never as markup; figures carry names escaped for plotly by dsprof.report.figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dash import dcc, html

from dsprof.core.errors import DsprofError
from dsprof.dashboard.cache import cached_report
from dsprof.dashboard.runs_list import runs_page
from dsprof.report.figures import figure_json
from dsprof.store.layout import TRIALS_DIR, RunPaths, is_run_folder
from dsprof.store.run_store import is_valid_run_id

if TYPE_CHECKING:
    from dsprof.dashboard.app import Route
    from dsprof.report.build import Report
    from dsprof.report.view_model import FindingView, ReportView
    from dsprof.store.run_store import RunStore

# figures shown side by side on the comparison page
COMPARE_FIGURES = ("latency", "timeline", "ops", "gpu_ops", "kernels")


def render(store: RunStore, route: Route, refresh_ms: int) -> tuple[Any, bool]:
    """The page for a resolved route, and whether the page's live refresh stays off.

    A run folder that cannot be read (unknown schema version, a broken table) gets a page that
    says which file and why, instead of a failed callback.
    """
    try:
        return _render(store, route, refresh_ms)
    except DsprofError as e:
        return html.Div(
            [
                html.H1("Cannot show this run"),
                html.Pre(str(e), id="run-error"),
                dcc.Link("back to the runs", href="/"),
            ]
        ), True


def _render(store: RunStore, route: Route, refresh_ms: int) -> tuple[Any, bool]:
    if route.page == "runs":
        return runs_page(store, refresh_ms), True
    if route.page == "compare":
        return compare_page(route.run_dirs[0], route.run_dirs[1]), True
    report = cached_report(route.run_dirs[0])
    running = report.view.status == "running"
    if route.page == "fix":
        return fix_page(report), not running
    base = f"/runs/{route.run_ids[0]}" if route.page == "trial" else None
    return run_page(report, parent_href=base), not running


def not_found(path: str) -> Any:
    """The page body for a path that names no page or no run."""
    return html.Div(
        [
            html.H1("Not found"),
            html.P(["No such page or run: ", html.Code(path)]),
            dcc.Link("back to the runs", href="/"),
        ],
        id="not-found",
    )


# ---- one run -----------------------------------------------------------------------------------


def _data(**values: str) -> dict[str, Any]:
    """data-* attributes (hooks for tests and styles)."""
    return {f"data-{k}": v for k, v in values.items()}


def _kpis(view: ReportView) -> Any:
    return html.Div(
        [
            html.Div(
                [html.Div(k.label, className="label"), html.Div(k.value, className="value")],
                className="kpi",
                **_data(kpi=k.key),
            )
            for k in view.kpis
        ],
        className="kpis",
    )


def _finding(f: FindingView) -> Any:
    rows = [
        html.Tr(
            [
                html.Td(e.metric),
                html.Td(e.value),
                html.Td(e.threshold),
                html.Td(e.window),
                html.Td(e.source),
            ]
        )
        for e in f.evidence
    ]
    head = html.Tr([html.Th(h) for h in ("metric", "value", "threshold", "window", "source")])
    return html.Article(
        [
            html.H3(
                [
                    html.Span(f.severity, className=f"badge sev-{f.severity}"),
                    html.Span(f.category, className="badge"),
                    html.Span(f.title, className="finding-title"),
                ]
            ),
            html.Div(
                f"impact {f.impact_text} of step time · confidence {f.confidence_text}",
                className="meta",
            ),
            html.P(f.detail) if f.detail else None,
            html.Table([html.Thead(head), html.Tbody(rows)], className="evidence")
            if rows
            else None,
            html.P(["recipes: ", html.Code(", ".join(f.recipes))]) if f.recipes else None,
        ],
        className=f"finding sev-{f.severity}",
        **_data(category=f.category),
    )


def _graphs(report: Report, suffix: str = "") -> list[Any]:
    return [
        dcc.Graph(
            id=f"fig-{spec.key}{suffix}",
            figure=figure_json(spec.figure),
            config={"displaylogo": False},
            className="figure",
        )
        for spec in report.figures
    ]


def run_page(report: Report, parent_href: str | None = None) -> Any:
    """KPIs, findings, figures and links of one run."""
    v = report.view
    links = []
    if v.fix.available:
        links.append(dcc.Link("fix session", href=f"/runs/{v.run_id}/fix", id="fix-link"))
    if parent_href:
        links.append(dcc.Link("baseline run", href=parent_href))
    meta = f"{v.status} · started {v.started_utc} · {v.duration_text}"
    findings: list[Any] = [html.H2(f"Findings ({len(v.findings)})")]
    if v.findings_state != "analysed":
        findings.append(html.P(v.findings_state, className="note"))
    elif not v.findings:
        findings.append(html.P("No bottleneck found above the analyzers' thresholds."))
    findings.extend(_finding(f) for f in v.findings)
    findings.extend(
        html.P(f"analyzer {name} failed: {why}", className="note")
        for name, why in v.analyzers_failed
    )
    return html.Div(
        [
            html.H1(v.run_id, id="run-title"),
            html.Div(meta, className=f"meta status-{v.status}", id="run-status"),
            html.P(
                ["target ", html.Code(v.target), " · model ", html.Code(", ".join(v.modules))],
                className="meta",
                id="run-target",
            ),
            html.Pre(v.error) if v.error else None,
            html.Div(links, className="links"),
            _kpis(v),
            html.Section(findings, id="findings"),
            html.Section(
                [
                    html.H2("Figures"),
                    *_graphs(report),
                    *[html.P(n, className="note") for n in report.notes],
                ],
                id="figures",
            ),
        ]
    )


# ---- fix session -------------------------------------------------------------------------------


def fix_page(report: Report) -> Any:
    """The trials of the run's fix session with their verdicts, and the applied diff."""
    v, fix = report.view, report.view.fix
    if not fix.available:
        return html.Div([html.H1(v.run_id), html.P(fix.state, className="note")])
    head = ["trial", "outcome", "speed-up [95% CI]", "p50", "p99", "peak memory Δ", "drift", "why"]
    rows = []
    for t in fix.trials:
        # the trial's run folder is <baseline>/trials/<its run id>; link it when it is there
        folder = Path(t["run_dir"]).name if t["run_dir"] else ""
        name: Any = t["name"]
        if (
            is_valid_run_id(folder)
            and Path(t["run_dir"]).parent.name == TRIALS_DIR
            and is_run_folder(RunPaths(report.root).trials_dir / folder)
        ):
            name = dcc.Link(t["name"], href=f"/runs/{v.run_id}/trials/{folder}")
        cells = [
            name,
            t["outcome"],
            t["speedup_text"],
            t["p50_text"],
            t["p99_text"],
            t["memory_change_text"],
            t["drift_text"],
            t["reason"],
        ]
        rows.append(
            html.Tr([html.Td(c) for c in cells], className="accepted" if t["accepted"] else "")
        )
    table = html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(rows)],
        className="trials",
        id="trials",
    )
    fig = next((s for s in report.figures if s.key == "fix"), None)
    candidates = html.Table(
        [
            html.Thead(html.Tr([html.Th(h) for h in ("recipe", "applies", "risk", "why")])),
            html.Tbody(
                [
                    html.Tr(
                        [
                            html.Td(c["recipe"]),
                            html.Td("yes" if c["applies"] else "no"),
                            html.Td(c["risk"]),
                            html.Td(c["reason"]),
                        ]
                    )
                    for c in fix.candidates
                ]
            ),
        ]
    )
    return html.Div(
        [
            html.H1(["Fix session of ", dcc.Link(v.run_id, href=f"/runs/{v.run_id}")]),
            html.P(
                f"script {fix.script} · baseline p50 {fix.baseline_p50_text} · accepted: "
                f"{', '.join(fix.accepted) or 'none'}",
                className="meta",
            ),
            table,
            dcc.Graph(id="fig-fix", figure=figure_json(fig.figure)) if fig else None,
            html.H2("Recipes considered"),
            candidates,
            *[html.P(n, className="note") for n in fix.apply_notes],
            html.H2("Applied diff") if fix.applied_diff else None,
            html.Pre(fix.applied_diff, className="diff") if fix.applied_diff else None,
        ]
    )


# ---- comparison --------------------------------------------------------------------------------


def compare_page(dir_a: Path, dir_b: Path) -> Any:
    """KPI deltas of B against A, and their figures side by side."""
    from dsprof.report.compare import compare_runs
    from dsprof.store.run_store import load_run

    cmp = compare_runs(load_run(dir_a), load_run(dir_b))
    ra, rb = cached_report(dir_a), cached_report(dir_b)
    head = html.Tr([html.Th(h) for h in ("metric", "A", "B", "change")])
    rows = [
        html.Tr(
            [
                html.Td(m.label),
                html.Td(m.a_text),
                html.Td(m.b_text),
                html.Td(
                    "n/a" if m.change_pct is None else f"{m.change_pct:+.1f} %", className=m.verdict
                ),
            ]
        )
        for m in cmp.metrics
    ]
    figs_a = {s.key: s for s in ra.figures}
    figs_b = {s.key: s for s in rb.figures}
    pairs = []
    for key in COMPARE_FIGURES:
        if key in figs_a or key in figs_b:
            cols = [
                html.Div(
                    dcc.Graph(id=f"fig-{key}-{side}", figure=figure_json(figs[key].figure))
                    if key in figs
                    else html.P("not recorded"),
                    className="col",
                )
                for side, figs in (("a", figs_a), ("b", figs_b))
            ]
            pairs.append(html.Div(cols, className="side-by-side"))
    only = [
        html.P(f"findings only in {side}: {', '.join(cats)}")
        for side, cats in (("A", cmp.only_a), ("B", cmp.only_b))
        if cats
    ]
    return html.Div(
        [
            html.H1("Comparison"),
            html.P(
                [
                    "A ",
                    dcc.Link(cmp.a_id, href=f"/runs/{cmp.a_id}"),
                    " · B ",
                    dcc.Link(cmp.b_id, href=f"/runs/{cmp.b_id}"),
                ]
            ),
            html.Table([html.Thead(head), html.Tbody(rows)], id="deltas"),
            *only,
            *pairs,
        ]
    )
