"""The runs list at `/`: every run folder in a sortable, filterable table with each run's
change against the previous run of its script, the runs grouped by script with their iteration
p50/p99 trend (fix sessions marked), and a compare picker. New runs appear without a reload:
the page polls the store and redraws only when a run folder was added or changed."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dash import dcc, html

from dsprof.core.errors import RunFolderError
from dsprof.core.steps import StepStats, iteration_stats
from dsprof.report.figures import figure_json
from dsprof.store.documents import read_findings
from dsprof.store.layout import MANIFEST, RunPaths
from dsprof.store.run_store import is_valid_run_id

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from dsprof.store.run_store import RunStore

# scripts with this many runs or more get a trend chart; the newest MAX_TRENDS scripts are drawn
MIN_TREND_RUNS = 2
MAX_TRENDS = 8


def _list_row(run_dir: Path, manifest: Any) -> dict[str, Any]:
    name = run_dir.name
    link = f"[{name}](/runs/{name})" if is_valid_run_id(name) else name
    if isinstance(manifest, RunFolderError):
        return {
            "run": link,
            "id": name,
            "status": "unreadable",
            "script": "",
            "target": "",
            "started": "",
            "note": str(manifest),
        }
    from dsprof.report.view_model import _utc, format_ns

    s = manifest.summary
    row: dict[str, Any] = {
        "run": link,
        "id": name,
        "start_ns": manifest.start_ns,
        "status": manifest.status,
        "script": Path(manifest.target).name,
        "target": manifest.target,
        "started": _utc(manifest.start_ns),
        "steps": s.count or None,
        "p50_ms": _ms(s.p50_ns),
        "p99_ms": _ms(s.p99_ns),
        "vs_prev": "",
        "findings": None,
        "top_finding": "",
        "fix": "fix" if RunPaths(run_dir).fix_session.is_file() else "",
        "note": "",
    }
    if row["p50_ms"] is None or not s.current:
        # a run in progress, or run.json from an older dsprof (StepStats.current): from the tables
        stats = _step_stats(run_dir, manifest.warmup_steps)
        if stats is not None and stats.count:
            row["steps"], row["p50_ms"], row["p99_ms"] = (
                stats.count,
                _ms(stats.p50_ns),
                _ms(stats.p99_ns),
            )
    findings_path = RunPaths(run_dir).findings
    if findings_path.is_file():
        try:
            doc = read_findings(findings_path).sorted()
        except RunFolderError as e:
            row["note"] = str(e)
        else:
            row["findings"] = len(doc.findings)
            if doc.findings:
                top = doc.findings[0]
                row["top_finding"] = f"[{top.severity}] {top.title}"
    if manifest.parent_run:
        row["note"] = f"trial of {manifest.parent_run}"
    row["duration"] = format_ns(manifest.end_ns - manifest.start_ns) if manifest.end_ns else ""
    return row


def _ms(ns: int | None) -> float | None:
    """Milliseconds to 3 significant digits, as the run pages show them."""
    return None if ns is None else float(f"{ns / 1e6:.3g}")


def _step_stats(run_dir: Path, warmup: int) -> StepStats | None:
    """Iteration statistics from the steps table (or the live steps of a run in progress)."""
    from dsprof.report.build import read_live_steps

    paths = RunPaths(run_dir)
    if not paths.steps.is_file():
        return iteration_stats(read_live_steps(paths), warmup)  # a run in progress
    import pandas as pd

    try:
        steps = pd.read_parquet(paths.steps)
    except Exception:  # a half-written table: the run page says why; the list just shows n/a
        return None
    return iteration_stats(steps, warmup)


def _with_previous(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run's iteration p50 against the previous run of the same script ("vs previous")."""
    by_script: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("script") and row.get("start_ns") is not None:
            by_script.setdefault(row["script"], []).append(row)
    for runs in by_script.values():
        runs.sort(key=lambda r: r["start_ns"])
        for prev, cur in itertools.pairwise(runs):
            if prev.get("p50_ms") and cur.get("p50_ms"):
                cur["vs_prev"] = f"{(cur['p50_ms'] / prev['p50_ms'] - 1) * 100:+.1f} %"
    return rows


def runs_rows(store: RunStore) -> list[dict[str, Any]]:
    """One table row per run folder, newest first."""
    return _with_previous([_list_row(d, m) for d, m in store.manifests()])


def store_signature(store: RunStore) -> list[list[Any]]:
    """Each run folder's name with its run.json's mtime and size: changes when a run is added,
    removed, or writes its manifest (start, end), so the list redraws only then."""
    out: list[list[Any]] = []
    for d in store.run_dirs():
        try:
            st = (d / MANIFEST).stat()
        except OSError:
            continue
        out.append([d.name, st.st_mtime_ns, st.st_size])
    return out


def trend_figure(script: str, rows: list[dict[str, Any]]) -> go.Figure:
    """Iteration p50 and p99 of one script's runs over time; runs with a fix session marked."""
    import plotly.graph_objects as go

    from dsprof.report.colors import SERIES_COLORS
    from dsprof.report.figures import layout, plot_text

    runs = sorted(rows, key=lambda r: r["start_ns"])
    x = [r["started"].removesuffix(" UTC") for r in runs]
    ids = [r["id"] for r in runs]
    fig = go.Figure()
    for key, name, dash in (("p50_ms", "iteration p50", "solid"), ("p99_ms", "p99", "dot")):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[r.get(key) for r in runs],
                mode="lines+markers",
                name=name,
                line={
                    "color": SERIES_COLORS["iteration" if key == "p99_ms" else "model"],
                    "dash": dash,
                },
                customdata=ids,
                hovertemplate=f"%{{customdata}}<br>{name} %{{y:.3g}} ms<extra></extra>",
            )
        )
    fixed = [r for r in runs if r.get("fix")]
    if fixed:
        fig.add_trace(
            go.Scatter(
                x=[r["started"].removesuffix(" UTC") for r in fixed],
                y=[r.get("p50_ms") for r in fixed],
                mode="markers",
                name="fix session",
                marker={"symbol": "star", "size": 14, "color": SERIES_COLORS["accepted"]},
                customdata=[r["id"] for r in fixed],
                hovertemplate="%{customdata}<br>dsprof fix ran on this run<extra></extra>",
            )
        )
    fig.update_yaxes(title_text="ms", rangemode="tozero")
    fig.update_xaxes(title_text="run started (UTC)")
    return layout(fig, f"{plot_text(script)}: iteration time per run", height=300)


def trends(rows: list[dict[str, Any]]) -> list[Any]:
    """One block per script (newest first): its runs' count, latest figures and trend."""
    by_script: dict[str, list[dict[str, Any]]] = {}
    for row in rows:  # rows are newest first
        if row.get("script") and not row.get("note", "").startswith("trial of"):
            by_script.setdefault(row["script"], []).append(row)
    blocks: list[Any] = []
    for i, (script, runs) in enumerate(list(by_script.items())[:MAX_TRENDS]):
        latest = runs[0]
        summary = f"{len(runs)} run{'s' if len(runs) > 1 else ''}"
        if latest.get("p50_ms") is not None:
            summary += f" · latest iteration p50 {latest['p50_ms']:g} ms"
        if latest.get("vs_prev"):
            summary += f" ({latest['vs_prev']} vs the run before)"
        children: list[Any] = [html.H3(script), html.P(summary, className="meta")]
        if len(runs) >= MIN_TREND_RUNS:
            children.append(
                dcc.Graph(
                    id=f"trend-{i}",
                    figure=figure_json(trend_figure(script, runs)),
                    config={"displaylogo": False, "responsive": True},
                    className="figure trend",
                )
            )
        attrs: dict[str, Any] = {"data-script": script}
        blocks.append(html.Div(children, className="script-group", **attrs))
    return blocks


def runs_page(store: RunStore, refresh_ms: int) -> Any:
    """All runs in a sortable, filterable table, a picker to compare two of them, and the runs
    grouped by script with their trends.

    The page polls every refresh_ms: the table's rows (only: the user's sort, filter and picks
    stay) and the groups are redrawn when a run folder was added or changed.
    """
    rows = runs_rows(store)
    ids = [d.name for d in store.run_dirs() if is_valid_run_id(d.name)]
    columns = [
        {"name": "run", "id": "run", "presentation": "markdown"},
        {"name": "status", "id": "status"},
        {"name": "script", "id": "script"},
        {"name": "started", "id": "started"},
        {"name": "duration", "id": "duration"},
        {"name": "iterations", "id": "steps", "type": "numeric"},
        {"name": "iteration p50 (ms)", "id": "p50_ms", "type": "numeric"},
        {"name": "p99 (ms)", "id": "p99_ms", "type": "numeric"},
        {"name": "vs previous run", "id": "vs_prev"},
        {"name": "findings", "id": "findings", "type": "numeric"},
        {"name": "top finding", "id": "top_finding"},
        {"name": "fix", "id": "fix"},
        {"name": "note", "id": "note"},
    ]
    with warnings.catch_warnings():
        # Dash 4 announces DataTable's move to dash-ag-grid, which is not installed here
        warnings.simplefilter("ignore", DeprecationWarning)
        from dash import dash_table

        table = dash_table.DataTable(  # type: ignore[attr-defined]
            id="runs-table",
            data=rows,
            columns=columns,
            sort_action="native",
            filter_action="native",
            page_size=50,
            markdown_options={"html": False, "link_target": "_self"},
            style_cell={"textAlign": "left", "whiteSpace": "normal", "height": "auto"},
            style_table={"overflowX": "auto"},
        )
    options = [{"label": i, "value": i} for i in ids]
    picker = html.Div(
        [
            html.Span("compare "),
            dcc.Dropdown(id="compare-a", options=options, placeholder="run A", className="pick"),
            dcc.Dropdown(id="compare-b", options=options, placeholder="run B", className="pick"),
            dcc.Link("compare", id="compare-link", href="/"),
        ],
        className="compare-picker",
    )
    empty = html.P(f"No runs under {store.root} yet: make one with `dsprof run script.py`.")
    refresh = dcc.Interval(id="runs-refresh", interval=refresh_ms)
    return html.Div(
        [
            html.H1(f"Runs ({len(rows)})", id="runs-count"),
            picker,
            None if rows else empty,
            table,
            html.H2("By script"),
            html.Div(trends(rows), id="trends"),
            refresh,
            dcc.Store(id="runs-signature", data=signature_data(store, rows)),
        ]
    )


def signature_data(store: RunStore, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the page last drew from: the store's signature and whether a run was in progress
    (a running run's rows change without its run.json changing)."""
    return {
        "runs": store_signature(store),
        "running": any(r.get("status") == "running" for r in rows),
    }
