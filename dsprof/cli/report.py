"""`dsprof report RUN [-o FILE] [--format html|md] [--cdn]`."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="report")
@click.argument("run", metavar="RUN")
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: report.html in the run folder; markdown goes to stdout).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "md"]),
    default="html",
    show_default=True,
    help="html: self-contained page with figures; md: tables for a pull-request comment.",
)
@click.option(
    "--cdn", is_flag=True, help="Load plotly.js from its CDN (small file, needs internet)."
)
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where run ids are looked up (default .dsprof/runs).",
)
def command(run: str, out: Path | None, fmt: str, cdn: bool, runs_dir: Path | None) -> None:
    """Write a report of RUN (a run folder's path, or its id under .dsprof/runs)."""
    from rich.console import Console

    from dsprof.report.build import write_report
    from dsprof.store.run_store import RunStore

    store = RunStore(runs_dir) if runs_dir is not None else None
    written, text = write_report(run, out, fmt=fmt, cdn=cdn, store=store)
    if written is None:
        click.echo(text, nl=False)
        return
    size = written.stat().st_size
    Console(stderr=True).print(
        f"wrote [bold]{written}[/] ({size / 2**20:.2f} MiB)", highlight=False
    )
