"""The comparison page: two runs' deltas and their figures side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dash import dcc, html

from dsprof.dashboard.cache import cached_report
from dsprof.report.figures import figure_json

# figures shown side by side on the comparison page
COMPARE_FIGURES = ("latency", "timeline", "ops", "gpu_ops", "kernels")


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
            html.Div(
                html.Table([html.Thead(head), html.Tbody(rows)], id="deltas"), className="scroll"
            ),
            *only,
            *pairs,
        ]
    )
