"""`dsprof fix`: try the recipes for a script's findings in trial runs, judge them, apply winners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from dsprof.cli.options import out_option, script_target, slo_option
from dsprof.cli.run import CAPTURE_BYTES_HELP, CAPTURE_RUN_BYTES_HELP, parse_bytes
from dsprof.core.errors import UsageError


def parse_tolerance(values: tuple[str, ...]) -> dict[str, float]:
    """--tolerance cosine=0.98 --tolerance top1=0.95 (a bare number sets the cosine)."""
    out: dict[str, float] = {}
    for v in values:
        key, _, num = v.rpartition("=")
        key = key or "cosine"
        if key not in ("cosine", "top1"):
            raise UsageError(f"--tolerance takes cosine=X or top1=X, not {v!r}")
        try:
            out[key] = float(num)
        except ValueError:
            raise UsageError(f"--tolerance {v!r}: {num!r} is not a number") from None
    return out


@click.command(
    "fix", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.option("-m", "module", metavar="MODULE", help="Run a library module, like python -m.")
@click.option(
    "--recipe",
    "recipes",
    multiple=True,
    metavar="NAME",
    help="Try exactly this recipe (repeatable); default: those the findings call for.",
)
@click.option(
    "--tolerance",
    multiple=True,
    metavar="cosine=X|top1=X",
    help="Drift tolerance for approximate recipes (default cosine=0.99, top1=0.99).",
)
@click.option(
    "--min-gain",
    type=float,
    default=0.03,
    show_default=True,
    help="The interval's lower end must show at least this gain.",
)
@click.option(
    "--warmup",
    type=int,
    default=2,
    show_default=True,
    help="Steps excluded at the start of each run (compile steps are excluded too).",
)
@click.option(
    "--repeats",
    type=int,
    default=1,
    show_default=True,
    help="Runs of the reference and of each trial, interleaved; their steps are pooled.",
)
@click.option("--max-steps", type=int, default=None, help="End each run after this many steps.")
@click.option("--capture-step-bytes", metavar="SIZE", help=CAPTURE_BYTES_HELP)
@click.option("--capture-run-bytes", metavar="SIZE", help=CAPTURE_RUN_BYTES_HELP)
@out_option("the baseline run folder")
@click.option("--apply", "apply_", is_flag=True, help="Write the accepted recipes into the script.")
@click.option("--dry-run", is_flag=True, help="With --apply: show the diff, write nothing.")
@click.option(
    "--force", is_flag=True, help="With --apply: patch a script with uncommitted changes."
)
@click.option("--json", "as_json", is_flag=True, help="Print the session as JSON on stdout.")
@slo_option(
    "Accuracy SLO as drift tolerance: cosine and top-1 >= 1 - X/100 (see docs/load.md).",
    "accuracy-drop<X%",
)
@click.argument("script_and_args", nargs=-1, type=click.UNPROCESSED)
def command(
    module: str | None,
    recipes: tuple[str, ...],
    tolerance: tuple[str, ...],
    slos: tuple[str, ...],
    min_gain: float,
    warmup: int,
    repeats: int,
    max_steps: int | None,
    capture_step_bytes: str | None,
    capture_run_bytes: str | None,
    out: Path,
    apply_: bool,
    dry_run: bool,
    force: bool,
    as_json: bool,
    script_and_args: tuple[str, ...],
) -> int:
    """Fix SCRIPT [ARGS]...: baseline, findings, trial runs, verdicts, and optionally --apply.

    The script's own output goes to each run's logs/, never to the terminal or the JSON. Input
    piped to stdin is recorded in the baseline run (logs/stdin.bin) and replayed to every later run.
    """
    from rich.console import Console

    from dsprof.load.run_slo import drift_tolerance
    from dsprof.recipes.session import FixOptions, FixRunner
    from dsprof.recipes.table import fix_tables

    target, args = script_target("fix", module, script_and_args)
    if dry_run and not apply_:
        apply_ = True
    opts = FixOptions(
        target=target,
        args=args,
        module=bool(module),
        out=out,
        recipes=list(recipes),
        # an explicit --tolerance is the more specific ask and wins over the SLO's bound
        tolerance={**drift_tolerance(slos), **parse_tolerance(tolerance)},
        min_gain=min_gain,
        warmup=warmup,
        repeats=repeats,
        max_steps=max_steps,
        capture_step_bytes=parse_bytes(capture_step_bytes, "--capture-step-bytes"),
        capture_run_bytes=parse_bytes(capture_run_bytes, "--capture-run-bytes"),
    )
    if apply_ and not dry_run and not force and not module:
        from dsprof.recipes.apply import uncommitted

        if uncommitted(Path(target)):  # refuse before spending minutes on trials
            raise UsageError(
                "has uncommitted git changes; commit them or pass --force", path=target
            )
    console = Console(stderr=True)
    with _progress(console, quiet=False) as progress:
        runner = FixRunner(opts, progress)
        session = runner.run()
        if apply_:
            from dsprof.recipes.apply import apply_accepted

            apply_accepted(runner, dry_run=dry_run, force=force)
    restored = session.apply is not None and session.apply.restored
    if as_json:
        click.echo(session.model_dump_json(indent=2))
    else:
        from rich.text import Text

        for part in fix_tables(session):
            # a diff is printed whole at any width (never cropped at the console's edge)
            console.print(part, soft_wrap=isinstance(part, Text) and bool(part.no_wrap))
    if restored:
        from dsprof.recipes.apply import EXIT_APPLY_FAILED

        assert session.apply is not None
        console.print(f"dsprof fix --apply: {session.apply.check_reason}", style="red")
        return EXIT_APPLY_FAILED
    return 0


class _progress:
    """A rich progress bar over the runs of the session (on stderr, so --json stays clean)."""

    def __init__(self, console: Any, quiet: bool) -> None:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=quiet,
        )
        self.task = self.bar.add_task("dsprof fix", total=None)

    def __enter__(self) -> Any:
        self.bar.start()

        def update(event: str, label: str) -> None:
            if event == "start":
                self.bar.update(self.task, description=f"running {label}")
            else:
                self.bar.advance(self.task)

        return update

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()
