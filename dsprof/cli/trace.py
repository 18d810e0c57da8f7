"""`dsprof trace PID`: an on-demand profiler window of a running, opted-in service.

Exit status: 0 the capture is complete; 1 it is partial (the service exited, or fewer steps than
asked came before the timeout) or failed; 2 bad input (no such process, another user's, not
opted in, a capture already running).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dsprof.cli.options import out_option, run_name_option
from dsprof.core.errors import UsageError
from dsprof.live.duration import parse_duration


@click.command("trace")
@click.argument("pid", type=int)
@click.option("--steps", type=int, default=None, help="Trace the next N model steps [default: 5].")
@click.option("--duration", default=None, metavar="D", help="Trace for D (3s, 500ms) instead.")
@click.option(
    "--timeout",
    default="60s",
    show_default=True,
    metavar="D",
    help="With --steps: stop after D even if fewer steps came (kept, marked partial).",
)
@out_option()
@run_name_option()
@click.option("--no-shapes", is_flag=True, help="Do not record input shapes (lighter on memory).")
@click.option("--no-analyze", is_flag=True, help="Skip the analyzers.")
@click.option(
    "--inject",
    is_flag=True,
    help="Python 3.14+: start the agent in a process that did not opt in (sys.remote_exec).",
)
@click.option("--yes", "-y", is_flag=True, help="With --inject: do not ask for confirmation.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines and no summary.")
def command(
    pid: int,
    steps: int | None,
    duration: str | None,
    timeout: str,
    out: Path,
    name: str | None,
    no_shapes: bool,
    no_analyze: bool,
    inject: bool,
    yes: bool,
    quiet: bool,
) -> int:
    """Trace the running process PID now, while it keeps serving (it must have opted in)."""
    from rich.console import Console

    from dsprof.live.target import resolve_pid
    from dsprof.live.trace import NotOptedInError, TraceRequest, find_agent, take_trace
    from dsprof.report.text import run_summary

    if steps is not None and duration is not None:
        raise UsageError("give --steps N or --duration D, not both")
    if steps is not None and steps < 1:
        raise UsageError("--steps must be at least 1")
    duration_s = parse_duration(duration, "--duration") if duration is not None else None
    console = Console(stderr=True)
    target = resolve_pid(pid)
    try:
        find_agent(target)
    except NotOptedInError:
        from dsprof.live.inject import can_inject, describe_injection, inject_agent

        # offered on a terminal where the target's Python can take it (3.14+), after saying
        # exactly what it runs; asked for with --inject; elsewhere the error says how to opt in
        interactive = sys.stdin.isatty() and not quiet
        if not (inject or interactive):
            raise
        possible, why_not = can_inject(target)
        if not possible:  # asked for: said before describing what cannot be done
            if not inject:
                raise
            raise UsageError(why_not) from None
        console.print(describe_injection(target))
        if not yes and not sys.stdin.isatty():
            raise UsageError(
                "--inject asks before it runs anything: add --yes where no one can answer"
            ) from None
        if not yes and not click.confirm("Start the agent in it now?", err=True):
            return 2
        inject_agent(target)

    def say(line: str) -> None:
        if not quiet:
            console.print(f"[dim]dsprof trace:[/dim] {line}")

    result = take_trace(
        TraceRequest(
            pid=pid,
            steps=None if duration_s is not None else (steps or 5),
            duration_s=duration_s,
            timeout_s=parse_duration(timeout, "--timeout"),
            out=out,
            name=name,
            record_shapes=not no_shapes,
            analyze=not no_analyze,
        ),
        say,
    )
    info = result.capture
    say(
        f"{info.status}: {info.steps_traced} steps traced, folder complete "
        f"{result.seconds:.1f} s after the request" + (f" ({info.reason})" if info.reason else "")
    )
    if not quiet:
        for part in run_summary(result.paths.root, result.manifest, result.findings):
            console.print(part)
    return 0 if info.status == "ok" else 1
