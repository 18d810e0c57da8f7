"""`dsprof run`: profile a script or module into a run folder and print its summary."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dsprof.cli.main import SignalExit
from dsprof.cli.options import F, out_option, run_name_option, script_target, slo_option
from dsprof.core.errors import UsageError

if TYPE_CHECKING:
    from dsprof.load.slo import Slo
    from dsprof.runner.launch import RunResult

_STEPS_RE = re.compile(r"^(\d+):(\d+)$")
_BYTES_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(i?b)?\s*$", re.IGNORECASE)
_BYTE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_steps(value: str) -> tuple[int, int]:
    """--steps W:A -> (warm-up steps skipped, steps traced)."""
    m = _STEPS_RE.match(value.strip())
    if not m or int(m.group(2)) < 1:
        raise UsageError(f"--steps wants WARMUP:ACTIVE like 1:5, not {value!r}")
    return int(m.group(1)), int(m.group(2))


def parse_bytes(value: str | None, option: str) -> int | None:
    """--capture-step-bytes 512K -> 524288 (K, M, G are powers of 1024; a bare number is bytes)."""
    if value is None:
        return None
    m = _BYTES_RE.match(value)
    if not m:
        raise UsageError(f"{option} wants a size like 512K, 2M or 1048576, not {value!r}")
    return int(float(m.group(1)) * _BYTE_UNITS[m.group(2).lower()])


CAPTURE_BYTES_HELP = (
    "Bytes of tensors a captured step may keep (default 512K); larger outputs are sampled by "
    "rows, with whole-tensor statistics."
)
CAPTURE_RUN_BYTES_HELP = "Bytes of captured tensors a whole run may keep (default 1.5M)."


def _load_path_option(flag: str, help: str) -> Callable[[F], F]:
    """A hidden path option through which `dsprof load` steers the run of its service."""
    return click.option(flag, type=click.Path(path_type=Path), default=None, hidden=True, help=help)


@click.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "-m", "module", metavar="MODULE", help="Run a library module as a script, like python -m."
)
@out_option()
@run_name_option(instead_of="the script's stem")
@click.option(
    "--steps",
    "steps",
    default="1:5",
    show_default=True,
    help="WARMUP:ACTIVE steps for the trace window.",
)
@click.option("--no-trace", is_flag=True, help="Sample only: no torch.profiler trace.")
@click.option(
    "--on-demand",
    is_flag=True,
    help="A service: no start-up trace; take traces while it runs with `dsprof trace PID`.",
)
@click.option(
    "--sample-hz", type=float, default=10.0, show_default=True, help="Host/GPU sampling rate."
)
@click.option(
    "--capture",
    "capture_steps",
    type=int,
    default=3,
    show_default=True,
    help="Save outputs of the first N steps.",
)
@click.option("--capture-step-bytes", metavar="SIZE", help=CAPTURE_BYTES_HELP)
@click.option("--capture-run-bytes", metavar="SIZE", help=CAPTURE_RUN_BYTES_HELP)
@click.option("--max-steps", type=int, default=None, help="End the script after this many steps.")
@click.option("--no-analyze", is_flag=True, help="Skip the analyzers (findings.json stays empty).")
@click.option("--quiet", "-q", is_flag=True, help="No live progress line and no summary.")
@click.option(
    "--nproc-per-node",
    type=int,
    default=None,
    help="Run N ranks on this node under torchrun (one job folder, ranks/<r>/ per rank).",
)
@click.option("--nnodes", type=int, default=1, show_default=True, help="Nodes in the job.")
@click.option("--node-rank", type=int, default=0, show_default=True, help="This node's rank.")
@click.option("--master-addr", default=None, help="Host of node 0 (multi-node jobs).")
@click.option("--master-port", type=int, default=None, help="Rendezvous port on node 0.")
@slo_option("Check step latency/throughput: p99<50ms, rps>20, cpu<90%; exit 3 when one fails.")
@_load_path_option("--run-dir", "Exactly this run folder (must not exist); dsprof load uses it.")
@_load_path_option(
    "--trace-hold-file",
    "Open the trace window only once this file exists (dsprof load: mid-load).",
)
@click.argument("script_and_args", nargs=-1, type=click.UNPROCESSED)
def command(
    module: str | None,
    out: Path,
    name: str | None,
    steps: str,
    no_trace: bool,
    on_demand: bool,
    sample_hz: float,
    capture_steps: int,
    capture_step_bytes: str | None,
    capture_run_bytes: str | None,
    max_steps: int | None,
    no_analyze: bool,
    quiet: bool,
    nproc_per_node: int | None,
    nnodes: int,
    node_rank: int,
    master_addr: str | None,
    master_port: int | None,
    slos: tuple[str, ...],
    run_dir: Path | None,
    trace_hold_file: Path | None,
    script_and_args: tuple[str, ...],
) -> int:
    """Run SCRIPT [ARGS]... (or -m MODULE [ARGS]...) under dsprof's collectors.

    The script runs as `python SCRIPT ARGS` would; dsprof exits with its exit status.
    """
    from rich.console import Console

    from dsprof.analyzers import write_findings
    from dsprof.core.findings import FindingsDocument
    from dsprof.load.run_slo import parse_run_slos
    from dsprof.report.text import run_summary
    from dsprof.runner.launch import RunRequest, run_script
    from dsprof.store.layout import is_run_folder

    warmup, active = parse_steps(steps)
    slo_list = parse_run_slos(slos) if slos else []  # a bad spec fails before the script runs
    target, args = script_target("run", module, script_and_args)
    request = RunRequest(
        target=target,
        args=args,
        module=bool(module),
        out=out,
        name=name,
        warmup_steps=warmup,
        active_steps=active,
        # an on-demand service is traced when asked: its start-up window would only compete
        trace=not no_trace and not on_demand,
        on_demand=on_demand,
        sample_hz=sample_hz,
        capture_steps=capture_steps,
        capture_step_bytes=parse_bytes(capture_step_bytes, "--capture-step-bytes"),
        capture_run_bytes=parse_bytes(capture_run_bytes, "--capture-run-bytes"),
        max_steps=max_steps,
        progress=not quiet,
        run_dir=run_dir,
        trace_hold_file=trace_hold_file,
    )
    ranks: list[int] = []
    if nproc_per_node is not None:  # a multi-rank job under torchrun (dsprof/runner/distributed.py)
        from dsprof.runner.distributed import DistributedOptions, run_distributed

        layout = DistributedOptions(nproc_per_node, nnodes, node_rank, master_addr, master_port)
        result = run_distributed(request, layout)
        ranks = layout.local_ranks
    elif nnodes != 1 or node_rank or master_addr or master_port:
        raise UsageError(
            "--nnodes, --node-rank, --master-addr and --master-port need --nproc-per-node"
        )
    else:
        result = run_script(request)
    # the runner has finished the folder; diagnosing it is the analyzers', as in `dsprof analyze`
    findings = FindingsDocument()
    if is_run_folder(result.paths.root):  # another node may not have written the job's yet
        findings = write_findings(result.paths.root, ranks=ranks, analyze=not no_analyze)
    if not quiet:
        console = Console(stderr=True)
        for part in run_summary(result.paths.root, result.manifest, findings):
            console.print(part)
    if slo_list:
        return _check_slos(result, slo_list, result.exit_code)
    if result.signal is not None:  # the script's process ended by a signal: so does dsprof's
        return SignalExit(result.exit_code, result.signal)
    return result.exit_code


def _check_slos(result: RunResult, slos: list[Slo], exit_code: int) -> int:
    """Print the SLO table for the run's steps; 3 (EXIT_SLO_FAILED) when one fails."""
    from rich.console import Console

    from dsprof.load.run_slo import check_run
    from dsprof.load.session import EXIT_SLO_FAILED
    from dsprof.load.slo import overall
    from dsprof.report.load_text import slo_notes, slo_table
    from dsprof.store.run_store import load_run_paths

    run = load_run_paths(result.paths, result.manifest)
    results = check_run(run, slos)
    console = Console()
    console.print(slo_table(results, title="SLOs on the steps (warm-up excluded)"))
    for line in slo_notes(results):
        console.print(line)
    verdict = overall(results)
    console.print(f"SLOs: {(verdict or 'none').upper()}")
    if exit_code == 0 and verdict == "fail":
        return EXIT_SLO_FAILED
    return exit_code
