"""Dash components shared by the dashboard's pages, built from dsprof.report's view-model.

Every string from a run folder goes into a component as a child or prop, which React renders as
text, never as markup; figures carry names escaped for plotly by dsprof.report.figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dash import dcc, html

from dsprof.report.figures import figure_json

if TYPE_CHECKING:
    from dsprof.report.build import Report
    from dsprof.report.figures import FigureSpec
    from dsprof.report.view_model import FindingView, FixBanner, ReportView

# how many evidence facts a finding shows before the fold
SHOWN_FACTS = 3


def data_attrs(**values: str) -> dict[str, Any]:
    """data-* attributes (hooks for tests, styles and the Perfetto script)."""
    return {f"data-{k.replace('_', '-')}": v for k, v in values.items()}


def kpis(view: ReportView) -> Any:
    """The headline numbers, with the model time under the iteration figures."""
    return html.Div(
        [
            html.Div(
                [
                    html.Div(k.label, className="label"),
                    html.Div(k.value, className="value"),
                    html.Div(k.note, className="sub") if k.note else None,
                ],
                className="kpi",
                **data_attrs(kpi=k.key),
            )
            for k in view.kpis
        ],
        className="kpis",
    )


def finding(f: FindingView) -> Any:
    """One finding: its action sentence first, key facts, the evidence folded."""
    head = html.Tr([html.Th(h) for h in ("fact", "value", "threshold", "window", "source", "key")])
    rows = [
        html.Tr(
            [
                html.Td(e.label),
                html.Td(e.value),
                html.Td(e.threshold),
                html.Td(e.window),
                html.Td(e.source),
                html.Td(html.Code(e.metric)),
            ]
        )
        for e in f.evidence
    ]
    action = None
    if f.action:
        tail: list[Any] = (
            [" — ", html.Code(f.action_command, className="fix-command"), " tests it."]
            if f.action_command
            else ["."]
        )
        action = html.P([html.Strong("Do: "), f.action, *tail], className="action")
    summary = f"evidence ({len(f.evidence)}): thresholds, windows, sources" + (
        f" · recipes {', '.join(f.recipes)}" if f.recipes else ""
    )
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
                f"impact {f.impact_text} of the time · confidence {f.confidence_text}",
                className="meta",
            ),
            action,
            html.P(f.detail) if f.detail else None,
            html.Ul(
                [html.Li([f"{e.label}: ", html.Strong(e.value)]) for e in f.evidence[:SHOWN_FACTS]],
                className="facts",
            )
            if f.evidence
            else None,
            html.Details(
                [
                    html.Summary(summary),
                    html.Div(
                        html.Table([html.Thead(head), html.Tbody(rows)], className="evidence"),
                        className="scroll",
                    ),
                ]
            )
            if rows
            else None,
        ],
        className=f"finding sev-{f.severity}",
        **data_attrs(category=f.category),
    )


def fix_banner(b: FixBanner, fix_href: str) -> Any:
    """The fix session's headline at the top of a run page."""
    facts = [
        html.Li(f"{b.interval_text} · speed-up {b.speedup_text}") if b.interval_text else None,
        html.Li(f"output drift: {b.drift_text}") if b.drift_text else None,
        html.Li(b.memory_text) if b.memory_text else None,
        html.Li(
            f"noise check: {b.noise_text}",
            className=f"noise noise-{b.noise_state or 'unknown'}",
            id="fix-noise",
        )
        if b.noise_text
        else None,
        html.Li(["write it into the script: ", html.Code(b.command)]) if b.command else None,
        html.Li(
            "before: the session's untraced reference runs; after: its trial runs (this page's "
            "other figures come from the profiled run)",
            className="note",
        ),
    ]
    return html.Section(
        [
            html.Div(
                [html.Strong("dsprof fix: "), html.Span(b.headline, id="fix-headline")],
                className="banner-head",
            ),
            html.Ul([f for f in facts if f is not None], className="banner-facts"),
            html.Details([html.Summary(b.diff_label), html.Pre(b.diff, className="diff")])
            if b.diff
            else None,
            dcc.Link("all trials", href=fix_href),
        ],
        id="fix-banner",
        className=f"banner banner-{b.outcome}",
    )


def graph(spec: FigureSpec, suffix: str = "") -> Any:
    """A figure as a responsive dcc.Graph."""
    return dcc.Graph(
        id=f"fig-{spec.key}{suffix}",
        figure=figure_json(spec.figure),
        config={"displaylogo": False, "responsive": True},
        className="figure",
    )


def perfetto_button(report: Report, run_href: str, perfetto_url: str) -> Any:
    """ "Open in Perfetto": assets/perfetto.js fetches the trace from this server (127.0.0.1)
    and hands it to the Perfetto UI with its postMessage handshake (PING / PONG, then the
    buffer). None when the run has no trace."""
    if not report.trace_files:
        return None
    rel = report.trace_files[0]
    return html.Button(
        "Open in Perfetto",
        id="perfetto-open",
        className="perfetto",
        title=f"opens {rel} in {perfetto_url}",
        **data_attrs(
            perfetto_trace=f"/trace{run_href.removeprefix('/runs')}/{rel}",
            perfetto_origin=perfetto_url.rstrip("/"),
            perfetto_title=f"{report.view.run_id}: {rel}",
        ),
    )
