"""create_app(store) -> dash.Dash: the dashboard over a run store.

Pages (client-side routes, rendered by one callback from the URL):
    /                               runs list (sortable, filterable, vs the previous run of each
                                    script), runs grouped by script with trends, a comparison
                                    picker; new runs appear without a reload
    /runs/<run-id>                  one run: KPIs, findings, figures; refreshes while it runs
    /runs/<run-id>/fix              its fix session: trials, verdicts, applied diff
    /runs/<run-id>/trials/<trial>   one trial run of that session
    /compare/<run-a>/<run-b>        two runs: deltas and figures side by side
    /trace/<run-id>/trace/<file>    a run's Kineto trace, for "Open in Perfetto" (also a trial's
                                    /trace/<run-id>/trials/<trial>/..., a rank's .../ranks/<r>/...)

It reads run folders only. Every run id in a URL is checked with dsprof.store.is_valid_run_id and
must name an existing folder; a request for any other path (a traversal such as
/runs/../../etc/passwd, an unknown page) gets an HTTP 404 before Dash sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsprof.store.layout import RunPaths, is_run_folder
from dsprof.store.run_store import RunStore, is_valid_run_id

if TYPE_CHECKING:
    import dash

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050
PERFETTO_URL = "https://ui.perfetto.dev"
# how often a page of a run still in progress re-reads its folder
REFRESH_MS = 2000
# Dash's own routes (scripts, layout, callbacks); every other path must be a page below
_DASH_PREFIXES = ("/_dash-", "/_reload-hash", "/_favicon.ico", "/assets/")
_ID = r"[^/]+"
# /trace/<run-id>[/trials/<trial-id>]/<a trace file of that folder, relative to it>
_TRACE_RE = re.compile(
    rf"^/trace/(?P<run>{_ID})(?:/trials/(?P<trial>{_ID}))?/(?P<file>(?:ranks/[0-9]+/)?trace/{_ID})$"
)
_PAGE_RE = re.compile(
    rf"^/(?:runs/(?P<run>{_ID})(?:/(?P<sub>fix|trials/(?P<trial>{_ID})))?"
    rf"|compare/(?P<a>{_ID})/(?P<b>{_ID}))?/?$"
)


@dataclass(frozen=True)
class Route:
    """A page URL resolved against the store: which page and which run folders."""

    page: str  # "runs" | "run" | "fix" | "trial" | "compare"
    run_dirs: tuple[Path, ...] = ()
    run_ids: tuple[str, ...] = ()


def resolve_route(store: RunStore, path: str) -> Route | None:
    """The page a path names, or None when it is no page or names a run that is not there."""
    m = _PAGE_RE.match(path or "/")
    if m is None:
        return None
    if m["run"] is None and m["a"] is None:
        return Route("runs")
    ids = [i for i in (m["run"], m["trial"], m["a"], m["b"]) if i is not None]
    if not all(is_valid_run_id(i) for i in ids):
        return None
    dirs: tuple[Path, ...]
    if m["a"] is not None:
        dirs = (store.root / m["a"], store.root / m["b"])
        page = "compare"
    elif m["trial"] is not None:
        dirs = (RunPaths(store.root / m["run"]).trials_dir / m["trial"],)
        page = "trial"
    else:
        dirs = (store.root / m["run"],)
        page = "fix" if m["sub"] == "fix" else "run"
    if not all(is_run_folder(d) for d in dirs):
        return None
    return Route(page, dirs, tuple(ids))


def trace_file(store: RunStore, path: str) -> Path | None:
    """The trace a /trace/... path names: one of the Kineto files of a run (or a trial or a rank
    of it) under the store; None for anything else, so no other file can be read this way."""
    m = _TRACE_RE.match(path)
    if m is None:
        return None
    ids = [i for i in (m["run"], m["trial"]) if i is not None]
    if not all(is_valid_run_id(i) for i in ids):
        return None
    root = store.root / m["run"]
    if m["trial"] is not None:
        root = RunPaths(root).trials_dir / m["trial"]
    if not is_run_folder(root):
        return None
    rel = m["file"]
    folder = RunPaths(root)
    if rel.startswith("ranks/"):
        folder = folder.rank(int(rel.split("/")[1]))
    return next((f for f in folder.trace_files() if f.relative_to(root).as_posix() == rel), None)


def create_app(
    store: RunStore, *, refresh_ms: int = REFRESH_MS, perfetto_url: str = PERFETTO_URL
) -> dash.Dash:
    """The Dash app over `store`; serve it with app.run(host=DEFAULT_HOST) or its Flask server.

    perfetto_url: the Perfetto UI that "Open in Perfetto" hands traces to (its origin must
    answer the PING / PONG handshake).
    """
    import dash
    from dash import Input, Output, State, dcc, html
    from flask import abort, request, send_file

    from dsprof.dashboard import pages
    from dsprof.dashboard.runs_list import runs_rows, signature_data, store_signature, trends

    app = dash.Dash(
        __name__,
        title="dsprof",
        update_title=None,  # type: ignore[arg-type]  # None turns the "Updating..." title off
        suppress_callback_exceptions=True,  # page components appear after routing
        serve_locally=True,  # scripts from the installed package: works offline
    )
    app.layout = html.Div(
        [
            dcc.Location(id="url", refresh=False),
            html.Header(
                [
                    dcc.Link("dsprof", href="/", className="brand"),
                    html.Span(" runs in "),
                    html.Code(str(store.root)),
                ],
                className="topbar",
            ),
            html.Main(id="page", className="page"),
            dcc.Interval(id="refresh", interval=refresh_ms, disabled=True),
        ]
    )

    @app.server.before_request
    def guard() -> Any:
        path = request.path
        if path.startswith(_DASH_PREFIXES):
            return None
        if path.startswith("/trace/"):
            trace = trace_file(store, path)
            if trace is None:
                abort(404)
            # served to this page's own script, which hands the bytes to Perfetto
            return send_file(trace, mimetype="application/octet-stream", max_age=0)
        if resolve_route(store, path) is None:
            abort(404)
        return None

    @app.callback(
        Output("page", "children"),
        Output("refresh", "disabled"),
        Input("url", "pathname"),
        Input("refresh", "n_intervals"),
    )
    def route(pathname: str | None, _ticks: int | None) -> tuple[object, bool]:
        # the callback checks the path again: a client can post any pathname to it
        resolved = resolve_route(store, pathname or "/")
        if resolved is None:
            return pages.not_found(pathname or ""), True
        return pages.render(store, resolved, refresh_ms, perfetto_url)

    @app.callback(
        Output("runs-table", "data"),
        Output("trends", "children"),
        Output("runs-count", "children"),
        Output("compare-a", "options"),
        Output("compare-b", "options"),
        Output("runs-signature", "data"),
        Input("runs-refresh", "n_intervals"),
        State("runs-signature", "data"),
        prevent_initial_call=True,
    )
    def refresh_runs(_ticks: int | None, seen: dict[str, Any] | None) -> tuple[Any, ...]:
        # new or changed run folders (and runs in progress) redraw the rows and the groups;
        # otherwise nothing is sent, so the user's sort, filter and picks stay as they are
        unchanged = seen is not None and not seen.get("running")
        if unchanged and store_signature(store) == seen.get("runs"):  # type: ignore[union-attr]
            return (dash.no_update,) * 6
        rows = runs_rows(store)
        options = [{"label": d.name, "value": d.name} for d in store.run_dirs()]
        return (
            rows,
            trends(rows),
            f"Runs ({len(rows)})",
            options,
            options,
            signature_data(store, rows),
        )

    @app.callback(
        Output("compare-link", "href"),
        Input("compare-a", "value"),
        Input("compare-b", "value"),
    )
    def compare_link(a: str | None, b: str | None) -> str:
        if a and b and is_valid_run_id(a) and is_valid_run_id(b):
            return f"/compare/{a}/{b}"
        return "/"

    return app


def serve(
    store: RunStore,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    perfetto_url: str = PERFETTO_URL,
) -> None:
    """Run the dashboard until interrupted (Flask's threaded server, no debug, no reloader)."""
    app = create_app(store, perfetto_url=perfetto_url)
    app.run(host=host, port=port, debug=False, use_reloader=False)
