"""`dsprof dashboard [RUNS_DIR] [--host 127.0.0.1] [--port 8050]`."""

from __future__ import annotations

from pathlib import Path

import click

from dsprof.dashboard.app import DEFAULT_HOST, DEFAULT_PORT, PERFETTO_URL


@click.command(name="dashboard")
@click.argument(
    "runs_dir", required=False, type=click.Path(file_okay=False, path_type=Path), default=None
)
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="Port.")
@click.option(
    "--perfetto-url",
    default=PERFETTO_URL,
    show_default=True,
    help="The Perfetto UI that 'Open in Perfetto' hands traces to (a self-hosted one works).",
)
def command(runs_dir: Path | None, host: str, port: int, perfetto_url: str) -> None:
    """Serve a Dash app over the run folders in RUNS_DIR (default .dsprof/runs)."""
    from rich.console import Console

    from dsprof.core.errors import UsageError
    from dsprof.dashboard.app import serve
    from dsprof.store.run_store import DEFAULT_RUNS_DIR, RunStore

    root = runs_dir if runs_dir is not None else DEFAULT_RUNS_DIR
    if not root.is_dir():
        raise UsageError(
            "no runs directory here: make a run with `dsprof run script.py`", path=root
        )
    console = Console(stderr=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]listening on {host}: anyone who can reach it can read the runs[/]")
    console.print(f"dsprof dashboard over {root} at http://{host}:{port}/ (Ctrl-C to stop)")
    serve(RunStore(root), host=host, port=port, perfetto_url=perfetto_url)
