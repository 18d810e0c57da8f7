"""`dsprof compare A B [--fail-above PCT] [--format md]`: what changed, the iteration-time
change with its noise interval, KPI deltas, and a CI gate that fails only on a change the
interval confirms."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from dsprof.cli.options import format_option, runs_dir_option, slo_option

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
    help="Exit 1 when B's iteration p50 is more than PCT (e.g. 5%) above A's with 95 % "
    "confidence: the whole bootstrap interval of the change lies above PCT.",
)
@format_option(
    ("text", "md"), "text: tables for the terminal; md: markdown for a pull-request comment."
)
@runs_dir_option()
@slo_option("Check both runs' steps against SLOs (p99<50ms, rps>20); exit 3 when B fails one.")
def command(
    run_a: str,
    run_b: str,
    fail_above: str | None,
    fmt: str,
    runs_dir: Path | None,
    slos: tuple[str, ...],
) -> int:
    """Compare run B against run A (paths, ids or short ids); A is the reference."""
    from rich.console import Console
    from rich.text import Text

    from dsprof.load.run_slo import parse_run_slos
    from dsprof.report.compare import compare_refs, comparison_renderables, parse_percent
    from dsprof.report.markdown import render_comparison_markdown
    from dsprof.store.run_store import RunStore

    threshold = parse_percent(fail_above) if fail_above is not None else None
    slo_list = parse_run_slos(slos) if slos else []
    store = RunStore(runs_dir) if runs_dir is not None else None
    cmp = compare_refs(run_a, run_b, store)
    console = Console()
    if fmt == "md":
        click.echo(render_comparison_markdown(cmp, threshold), nl=False)
    else:
        for part in comparison_renderables(cmp, threshold):
            console.print(part, soft_wrap=not hasattr(part, "columns"))
    slo_code = _check_slos(console, run_a, run_b, store, slo_list) if slo_list else 0
    if threshold is None:
        return slo_code
    failed = cmp.fails(threshold)
    assert cmp.iteration is not None  # fails() raised otherwise
    change = cmp.iteration
    interval = f"[{change.low_pct:+.1f} %, {change.high_pct:+.1f} %]"
    out = Console(stderr=True) if fmt == "md" else console
    if failed:
        out.print(
            Text.assemble(
                ("FAIL", "bold red"),
                f": iteration p50 {change.change_pct:+.1f} %, 95 % interval {interval} lies "
                f"wholly above {threshold:g} %",
            ),
            soft_wrap=True,
        )
        return 1
    why = (
        "within noise"
        if change.verdict == "within noise"
        else f"the interval reaches below {threshold:g} %"
        if change.high_pct > threshold
        else f"within {threshold:g} %"
    )
    out.print(
        Text.assemble(
            ("ok", "green"), f": iteration p50 {change.change_pct:+.1f} % {interval}: {why}"
        )
    )
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
