"""`dsprof compare A B [--fail-above PCT]`: KPI deltas, and a CI gate on step-time p50."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="compare")
@click.argument("run_a", metavar="A")
@click.argument("run_b", metavar="B")
@click.option(
    "--fail-above",
    "fail_above",
    default=None,
    metavar="PCT",
    help="Exit 1 when B's step-time p50 is more than PCT (e.g. 5%) above A's.",
)
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where run ids are looked up (default .dsprof/runs).",
)
def command(run_a: str, run_b: str, fail_above: str | None, runs_dir: Path | None) -> int:
    """Compare run B against run A (paths or ids); A is the reference."""
    from rich.console import Console

    from dsprof.report.compare import compare_refs, comparison_table, parse_percent
    from dsprof.store.run_store import RunStore

    threshold = parse_percent(fail_above) if fail_above is not None else None
    cmp = compare_refs(run_a, run_b, RunStore(runs_dir) if runs_dir is not None else None)
    console = Console()
    console.print(comparison_table(cmp, threshold))
    if threshold is None:
        return 0
    change = cmp.p50_regression_pct()
    if cmp.fails(threshold):
        console.print(
            f"[bold red]FAIL[/]: step p50 regressed {change:+.1f} % (threshold {threshold:g} %)"
        )
        return 1
    console.print(f"[green]ok[/]: step p50 change {change:+.1f} % is within {threshold:g} %")
    return 0
