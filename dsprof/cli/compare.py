"""`dsprof compare A B [--fail-above PCT]`: KPI deltas, and a CI gate on step-time p50."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console

    from dsprof.load.slo import Slo
    from dsprof.store.run_store import RunStore


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
@click.option(
    "--slo",
    "slos",
    multiple=True,
    metavar="SPEC",
    help="Check both runs' steps against SLOs (p99<50ms, rps>20); exit 3 when B fails one.",
)
def command(
    run_a: str, run_b: str, fail_above: str | None, runs_dir: Path | None, slos: tuple[str, ...]
) -> int:
    """Compare run B against run A (paths or ids); A is the reference."""
    from rich.console import Console

    from dsprof.load.run_slo import parse_run_slos
    from dsprof.report.compare import compare_refs, comparison_table, parse_percent
    from dsprof.store.run_store import RunStore

    threshold = parse_percent(fail_above) if fail_above is not None else None
    slo_list = parse_run_slos(slos) if slos else []
    store = RunStore(runs_dir) if runs_dir is not None else None
    cmp = compare_refs(run_a, run_b, store)
    console = Console()
    console.print(comparison_table(cmp, threshold))
    slo_code = _check_slos(console, run_a, run_b, store, slo_list) if slo_list else 0
    if threshold is None:
        return slo_code
    change = cmp.p50_regression_pct()
    if cmp.fails(threshold):
        console.print(
            f"[bold red]FAIL[/]: iteration p50 regressed {change:+.1f} % (threshold {threshold:g} %)"
        )
        return 1
    console.print(f"[green]ok[/]: iteration p50 change {change:+.1f} % is within {threshold:g} %")
    return slo_code


def _check_slos(
    console: Console, run_a: str, run_b: str, store: RunStore | None, slos: list[Slo]
) -> int:
    """SLO tables for A and B; 3 (EXIT_SLO_FAILED) when B fails one."""
    from dsprof.load.run_slo import check_run
    from dsprof.load.session import EXIT_SLO_FAILED
    from dsprof.load.slo import overall
    from dsprof.report.load_text import slo_notes, slo_table
    from dsprof.store.run_store import load_run

    verdict = None
    for label, ref in (("A", run_a), ("B", run_b)):
        results = check_run(load_run(ref, store), slos)
        console.print(slo_table(results, title=f"SLOs on {label} ({ref})"))
        for line in slo_notes(results):
            console.print(line)
        verdict = overall(results)
    console.print(f"SLOs on B: {(verdict or 'none').upper()}")
    return EXIT_SLO_FAILED if verdict == "fail" else 0
