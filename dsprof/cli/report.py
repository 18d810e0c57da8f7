"""`dsprof report RUN [-o FILE] [--format html|md] [--cdn]`."""

from __future__ import annotations

from pathlib import Path

import click

from dsprof.cli.options import format_option, runs_dir_option


@click.command(name="report")
@click.argument("targets", metavar="RUN | TRACE...", nargs=-1, required=True)
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: report.html in the run folder, or beside the first trace; "
    "markdown goes to stdout).",
)
@format_option(
    ("html", "md"),
    "html: self-contained page with figures; md: tables for a pull-request comment.",
)
@click.option(
    "--cdn", is_flag=True, help="Load plotly.js from its CDN (small file, needs internet)."
)
@runs_dir_option()
@click.option(
    "--base",
    default=None,
    metavar="RUN",
    help="With --format md: show each KPI against this run (Δ, and the iteration change's "
    "95 % interval).",
)
def command(
    targets: tuple[str, ...],
    out: Path | None,
    fmt: str,
    cdn: bool,
    runs_dir: Path | None,
    base: str | None,
) -> None:
    """Write a report of RUN (a run folder's path, its id or short id under .dsprof/runs, or
    latest), or of Kineto TRACE files someone recorded (several: the ranks of one job)."""
    from rich.console import Console

    from dsprof.report.build import write_report
    from dsprof.store.run_store import RunStore

    store = RunStore(runs_dir) if runs_dir is not None else None
    refs: list[str | Path] = list(targets)
    written, text = write_report(refs, out, fmt=fmt, cdn=cdn, store=store, base=base)
    if written is None:
        click.echo(text, nl=False)
        return
    size = written.stat().st_size
    Console(stderr=True).print(
        f"wrote [bold]{written}[/] ({size / 2**20:.2f} MiB)", highlight=False
    )
