"""The dashboard's pages: routing to the runs list, a run, its fix session and a comparison.

Components come from dsprof.dashboard.components (strings as text, never markup).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dash import dcc, html

from dsprof.core.errors import DsprofError
from dsprof.dashboard.cache import cached_report
from dsprof.dashboard.compare_page import compare_page
from dsprof.dashboard.components import finding, fix_banner, graph, kpis, perfetto_button
from dsprof.dashboard.runs_list import runs_page
from dsprof.report.figures import figure_json
from dsprof.store.layout import TRIALS_DIR, RunPaths, is_run_folder
from dsprof.store.run_store import is_valid_run_id

if TYPE_CHECKING:
    from dsprof.dashboard.app import Route
    from dsprof.report.build import Report
    from dsprof.store.run_store import RunStore


def render(
    store: RunStore, route: Route, refresh_ms: int, perfetto_url: str = "https://ui.perfetto.dev"
) -> tuple[Any, bool]:
    """The page for a resolved route, and whether the page's live refresh stays off.

    A run folder that cannot be read (unknown schema version, a broken table) gets a page that
    says which file and why, instead of a failed callback.
    """
    try:
        return _render(store, route, refresh_ms, perfetto_url)
    except DsprofError as e:
        return html.Div(
            [
                html.H1("Cannot show this run"),
                html.Pre(str(e), id="run-error"),
                dcc.Link("back to the runs", href="/"),
            ]
        ), True


def _render(store: RunStore, route: Route, refresh_ms: int, perfetto_url: str) -> tuple[Any, bool]:
    if route.page == "runs":
        return runs_page(store, refresh_ms), True
    if route.page == "compare":
        return compare_page(route.run_dirs[0], route.run_dirs[1]), True
    report = cached_report(route.run_dirs[0])
    running = report.view.status == "running"
    if route.page == "fix":
        return fix_page(report), not running
    base = f"/runs/{route.run_ids[0]}"
    if route.page == "trial":
        href = f"{base}/trials/{route.run_ids[1]}"
        return run_page(report, href, perfetto_url, parent_href=base), not running
    return run_page(report, base, perfetto_url), not running


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


def run_page(
    report: Report, run_href: str, perfetto_url: str, parent_href: str | None = None
) -> Any:
    """The fix banner, KPIs, findings (the breakdown under the top one), figures and links."""
    v = report.view
    links = []
    if v.fix.available:
        links.append(dcc.Link("fix session", href=f"{run_href}/fix", id="fix-link"))
    if parent_href:
        links.append(dcc.Link("baseline run", href=parent_href))
    links.append(perfetto_button(report, run_href, perfetto_url))
    meta = f"{v.status} · started {v.started_utc} · {v.duration_text}"
    breakdown = report.figure("breakdown")
    findings: list[Any] = [html.H2(f"Findings ({len(v.findings)})")]
    if v.findings_state != "analysed":
        findings.append(html.P(v.findings_state, className="note"))
    elif not v.findings:
        findings.append(html.P("No bottleneck found above the analyzers' thresholds."))
    for i, f in enumerate(v.findings):
        findings.append(finding(f))
        if i == 0 and breakdown is not None:
            findings.append(graph(breakdown))
    if breakdown is not None and not v.findings:
        findings.append(graph(breakdown))
    findings.extend(
        html.P(f"analyzer {name} failed: {why}", className="note")
        for name, why in v.analyzers_failed
    )
    target: list[Any] = [html.Code(v.target_display or v.target)]
    if v.modules:
        target += [" · model ", html.Code(", ".join(v.modules))]
    return html.Div(
        [
            html.H1(v.run_id, id="run-title"),
            html.Div(meta, className=f"meta status-{v.status}", id="run-status"),
            html.P(["target ", *target], className="meta", id="run-target"),
            html.Pre(v.error) if v.error else None,
            html.Div([x for x in links if x is not None], className="links"),
            fix_banner(v.fix.banner, f"{run_href}/fix") if v.fix.banner else None,
            kpis(v),
            html.P(v.step_definition, className="note", id="step-definition")
            if v.step_definition
            else None,
            html.Section(findings, id="findings"),
            html.Section(
                [
                    html.H2("Figures"),
                    *[graph(spec) for spec in report.figures if spec.key != "breakdown"],
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
                f"script {fix.script} · baseline iteration p50 {fix.baseline_p50_text} · accepted: "
                f"{', '.join(fix.accepted) or 'none'}",
                className="meta",
            ),
            html.Div(table, className="scroll"),
            dcc.Graph(id="fig-fix", figure=figure_json(fig.figure)) if fig else None,
            html.H2("Recipes considered"),
            html.Div(candidates, className="scroll"),
            *[html.P(n, className="note") for n in fix.apply_notes],
            html.H2("Applied diff") if fix.applied_diff else None,
            html.Pre(fix.applied_diff, className="diff") if fix.applied_diff else None,
        ]
    )
