"""`dsprof analyze`: diagnose a run folder (rewrites its findings.json) or Kineto traces."""

from __future__ import annotations

import os
from pathlib import Path

import click

from dsprof.store.layout import DEFAULT_RUNS_DIR

# notices also said on stderr (with --json too): the input is not what the reader was built for
STDERR_NOTICES = frozenset({"unknown-schema-version"})


@click.command("analyze")
@click.argument("targets", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help="Print the findings document as JSON on stdout."
)
@click.option(
    "--runs",
    "runs_dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_RUNS_DIR,
    show_default=True,
    help="Where run ids are looked up.",
)
def command(targets: tuple[Path, ...], as_json: bool, runs_dir: Path) -> int:
    """Diagnose RUN_DIR (a run folder or id; rewrites its findings.json) or TRACE files.

    Several traces (or a directory of them) are read as the ranks of one job.
    """
    from dsprof.trace.files import names_a_run, trace_targets
    from dsprof.trace.workers import TraceWorkers

    workers = None
    try:
        if not names_a_run(list(targets)):
            trace_paths = trace_targets(list(targets))
            # Traces start parsing in worker processes now, while the analyzers (pandas) import.
            # The parser's modules load first, so a worker starts parsing at once; analyze does
            # no linear algebra, and one OpenBLAS thread keeps this process single-threaded for
            # the fork.
            os.environ["OPENBLAS_NUM_THREADS"] = "1"
            import dsprof.trace.parse  # noqa: F401

            workers = TraceWorkers(trace_paths)
        from dsprof.analyzers import analyze_targets

        doc, run_dir = analyze_targets(list(targets), runs_dir, workers)
    finally:
        if workers is not None:  # also when Ctrl-C or an error came before they answered
            workers.close()
    for notice in doc.notices:
        if notice.code in STDERR_NOTICES:
            click.echo(f"dsprof: warning: {notice.message}", err=True)
    if as_json:
        click.echo(doc.model_dump_json(indent=2))
        return 0
    from rich.console import Console

    from dsprof.analyzers.notices import NOT_JUDGED
    from dsprof.report.text import findings_table, notices_text

    console = Console()
    for line in notices_text(doc):
        console.print(line)
    if doc.findings:
        from dsprof.report.text import finding_actions

        manifest = None
        if run_dir is not None:
            from dsprof.store import read_manifest
            from dsprof.store.layout import RunPaths

            manifest = read_manifest(RunPaths(run_dir).manifest)
        console.print(findings_table(doc, actions=finding_actions(run_dir, manifest, doc)))
    elif any(n.code in NOT_JUDGED for n in doc.notices):
        console.print("No finding: part of this could not be judged (see the notices above).")
    else:
        console.print("No bottleneck found above the analyzers' thresholds.")
    for name, why in doc.analyzers_failed.items():
        console.print(f"[yellow]analyzer {name} failed:[/yellow] {why}")
    if run_dir is not None:
        from dsprof.store import read_manifest
        from dsprof.store.layout import RunPaths

        paths = RunPaths(run_dir)
        console.print(f"Wrote {paths.findings}", soft_wrap=True)
        from dsprof.report.actions import fix_command

        console.print("Next:")
        fix = fix_command(read_manifest(paths.manifest))  # the script's own arguments too
        if fix:
            console.print(f"  {fix}", soft_wrap=True)
        console.print(f"  dsprof report {run_dir} -o report.html", soft_wrap=True)
    return 0
