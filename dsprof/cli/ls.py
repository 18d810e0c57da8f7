"""`dsprof ls`: runs newest first, with their key numbers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from dsprof.store.layout import DEFAULT_RUNS_DIR

if TYPE_CHECKING:
    from dsprof.core.manifest import RunManifest


def with_iterations(path: Path, manifest: RunManifest | Exception) -> RunManifest | Exception:
    """A manifest whose summary predates iterations or the traced iterations' exclusion (or
    is missing) gets the figures recomputed from its steps table, as every surface shows them."""
    from dsprof.core.manifest import RunManifest
    from dsprof.store.layout import RunPaths

    paths = RunPaths(path)
    if (
        not isinstance(manifest, RunManifest)
        or manifest.summary.current
        or not paths.steps.is_file()
    ):
        return manifest
    from dsprof.runner.finalize import summarize

    try:
        summary = summarize(paths, manifest.warmup_steps)
    except Exception:  # a half-written table: list the run with what run.json says
        return manifest
    return manifest.model_copy(update={"summary": summary})


@click.command("ls")
@click.argument(
    "runs_dir", required=False, type=click.Path(path_type=Path), default=DEFAULT_RUNS_DIR
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
    console.print(runs_table([(path, with_iterations(path, m)) for path, m in rows[:limit]]))
    if len(rows) > limit:
        console.print(f"({len(rows) - limit} older runs not shown; --limit to see more)")
    console.print(
        "it = iteration, timed start to start (model call to model call); "
        "* = model calls, recorded before that. Any command takes the short id: "
        "dsprof report ID",
        style="dim",
    )
    return 0
