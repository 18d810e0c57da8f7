"""The comparison page: what changed, the iteration change with its noise interval, KPI deltas,
findings that moved, and the figures on shared axes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dash import dcc, html

from dsprof.dashboard.cache import cached_report
from dsprof.report.figures import figure_json

# figures shown side by side, on the same axes (the distributions and breakdowns are overlaid)
COMPARE_FIGURES = ("timeline", "ops", "gpu_ops", "kernels")


def _table(head: list[str], rows: list[list[Any]], table_id: str) -> Any:
    return html.Div(
        html.Table(
            [
                html.Thead(html.Tr([html.Th(h) for h in head])),
                html.Tbody([html.Tr([html.Td(c) for c in row]) for row in rows]),
            ],
            id=table_id,
        ),
        className="scroll",
    )


def compare_page(dir_a: Path, dir_b: Path) -> Any:
    """B against A (A is the reference)."""
    import plotly.graph_objects as go

    from dsprof.report.compare import compare_runs, run_iterations
    from dsprof.report.compare_figures import breakdown_comparison, iterations_overlay, share_axes
    from dsprof.store.run_store import load_run

    run_a, run_b = load_run(dir_a), load_run(dir_b)
    cmp = compare_runs(run_a, run_b)
    ra, rb = cached_report(dir_a), cached_report(dir_b)
    verdict = cmp.iteration.verdict if cmp.iteration is not None else "unknown"
    deltas = html.Div(
        html.Table(
            [
                html.Thead(html.Tr([html.Th(h) for h in ("metric", "A", "B", "change")])),
                html.Tbody(
                    [
                        html.Tr(
                            [
                                html.Td(m.label),
                                html.Td(m.a_text),
                                html.Td(m.b_text),
                                html.Td(
                                    "n/a" if m.change_pct is None else f"{m.change_pct:+.1f} %",
                                    className=m.verdict,
                                ),
                            ]
                        )
                        for m in cmp.metrics
                    ]
                ),
            ],
            id="deltas",
        ),
        className="scroll",
    )
    changed = (
        _table(["", "A", "B"], [list(r) for r in cmp.what_changed], "what-changed")
        if cmp.what_changed
        else html.P("Nothing recorded changed: same command, software and machine.")
    )
    findings = [
        html.Li(f"only in {side}: {', '.join(cats)}")
        for side, cats in (("A", cmp.only_a), ("B", cmp.only_b))
        if cats
    ] + [html.Li(f"moved: {c.text}") for c in cmp.changed_findings]
    overlays = [
        ("iterations", iterations_overlay(run_iterations(run_a), run_iterations(run_b))),
        ("breakdown-compare", breakdown_comparison(ra.breakdown, rb.breakdown)),
    ]
    graphs: list[Any] = [
        dcc.Graph(id=f"fig-{key}", figure=figure_json(fig), className="figure")
        for key, fig in overlays
        if fig is not None
    ]
    figs_a = {s.key: s for s in ra.figures}
    figs_b = {s.key: s for s in rb.figures}
    for key in COMPARE_FIGURES:
        if key not in figs_a and key not in figs_b:
            continue
        # copies: the cached reports' figures are shared with their run pages
        fa = go.Figure(figs_a[key].figure) if key in figs_a else None
        fb = go.Figure(figs_b[key].figure) if key in figs_b else None
        if fa is not None and fb is not None:
            share_axes(fa, fb)
        cols = [
            html.Div(
                dcc.Graph(id=f"fig-{key}-{side}", figure=figure_json(fig))
                if fig is not None
                else html.P("not recorded"),
                className="col",
            )
            for side, fig in (("a", fa), ("b", fb))
        ]
        graphs.append(html.Div(cols, className="side-by-side"))
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
            *[html.P(f"warning: {w}", className="warning") for w in cmp.warnings],
            html.P(
                f"B vs A: {cmp.headline}",
                id="compare-verdict",
                className=f"verdict verdict-{verdict.replace(' ', '-')}",
            ),
            html.H2("What changed"),
            changed,
            html.H2("Numbers"),
            deltas,
            html.Ul(findings, id="finding-changes") if findings else None,
            *graphs,
        ]
    )
