"""The runs list at `/`: every run folder in a sortable, filterable table, and a compare picker."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dash import dcc, html

from dsprof.core.errors import RunFolderError
from dsprof.core.steps import StepStats, iteration_stats
from dsprof.store.documents import read_findings
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import is_valid_run_id

if TYPE_CHECKING:
    from dsprof.store.run_store import RunStore


def _list_row(run_dir: Path, manifest: Any) -> dict[str, Any]:
    name = run_dir.name
    link = f"[{name}](/runs/{name})" if is_valid_run_id(name) else name
    if isinstance(manifest, RunFolderError):
        return {
            "run": link,
            "status": "unreadable",
            "target": "",
            "started": "",
            "note": str(manifest),
        }
    from dsprof.report.view_model import _utc, format_ns

    row: dict[str, Any] = {
        "run": link,
        "status": manifest.status,
        "target": manifest.target,
        "started": _utc(manifest.start_ns),
        "steps": manifest.summary.count or None,
        "p50_ms": round(manifest.summary.p50_ns / 1e6, 3) if manifest.summary.p50_ns else None,
        "findings": None,
        "top_finding": "",
        "note": "",
    }
    if row["p50_ms"] is None:
        stats = _step_stats(run_dir, manifest.warmup_steps)
        if stats is not None and stats.count:
            row["steps"], row["p50_ms"] = stats.count, round((stats.p50_ns or 0) / 1e6, 3)
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


def _step_stats(run_dir: Path, warmup: int) -> StepStats | None:
    """Step statistics from the steps table (or the live steps of a run in progress)."""
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


def runs_rows(store: RunStore) -> list[dict[str, Any]]:
    """One table row per run folder, newest first."""
    return [_list_row(d, m) for d, m in store.manifests()]


def runs_page(store: RunStore, refresh_ms: int) -> Any:
    """All runs in a sortable, filterable table and a picker to compare two of them.

    While a run is in progress the table's rows refresh every refresh_ms (the rows only, so the
    user's sort, filter and picks stay).
    """
    rows = runs_rows(store)
    ids = [d.name for d in store.run_dirs() if is_valid_run_id(d.name)]
    columns = [
        {"name": "run", "id": "run", "presentation": "markdown"},
        {"name": "status", "id": "status"},
        {"name": "target", "id": "target"},
        {"name": "started", "id": "started"},
        {"name": "duration", "id": "duration"},
        {"name": "steps", "id": "steps", "type": "numeric"},
        {"name": "p50 (ms)", "id": "p50_ms", "type": "numeric"},
        {"name": "findings", "id": "findings", "type": "numeric"},
        {"name": "top finding", "id": "top_finding"},
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
    empty = html.P(f"No runs under {store.root}: make one with `dsprof run script.py`.")
    running = any(r["status"] == "running" for r in rows)
    refresh = dcc.Interval(id="runs-refresh", interval=refresh_ms, disabled=not running)
    return html.Div([html.H1(f"Runs ({len(rows)})"), picker, table if rows else empty, refresh])
