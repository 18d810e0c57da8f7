"""`dsprof ls`: runs newest first, with their key numbers."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("ls")
@click.argument(
    "runs_dir", required=False, type=click.Path(path_type=Path), default=Path(".dsprof/runs")
)
@click.option(
    "--limit", "-n", type=int, default=30, show_default=True, help="Show at most this many runs."
)
def command(runs_dir: Path, limit: int) -> int:
    """List the runs under RUNS_DIR (default .dsprof/runs), newest first."""
    from rich.console import Console

    from dsprof.report.text import runs_table
    from dsprof.store.run_store import RunStore

    console = Console()
    rows = list(RunStore(runs_dir).manifests())
    if not rows:
        console.print(f"No runs under {runs_dir}. Start one with: dsprof run script.py")
        return 0
    console.print(runs_table(rows[:limit]))
    if len(rows) > limit:
        console.print(f"({len(rows) - limit} older runs not shown; --limit to see more)")
    return 0
