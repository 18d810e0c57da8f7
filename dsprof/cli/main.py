"""The `dsprof` command: an explicit table of subcommands, each in its own module.

Subcommand modules are imported only when called, so `dsprof --help` and `dsprof ls`
start without importing torch or dash.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys

import click

from dsprof.core.errors import DsprofError

# (name, module under dsprof.cli, one-line help). Each module defines `command`.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("run", "run", "Profile a script (or -m module) into a run folder and summarise it."),
    ("ls", "ls", "List runs, newest first, with their key numbers."),
    ("env", "env", "Show what can be collected on this machine, and why not."),
    ("analyze", "analyze", "Diagnose a run folder or Kineto traces recorded anywhere."),
    ("fix", "fix", "Try the recipes for a script's findings, re-measure, and apply the winners."),
    ("report", "report", "Write a self-contained HTML or markdown report of a run."),
    ("dashboard", "dashboard", "Serve a Dash app over the run folders."),
    ("compare", "compare", "Compare two runs; fail when step time regresses beyond a threshold."),
    ("load", "load", "Measure a model service under open-loop load against its SLOs."),
    ("watch", "watch", "Watch a running service live (psutil, NVML); /metrics for Prometheus."),
    ("trace", "trace", "Take a profiler window of a running, opted-in service, now."),
)


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, _, _ in COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for name, module, _ in COMMANDS:
            if name == cmd_name:
                return importlib.import_module(f"dsprof.cli.{module}").command
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, _, help_ in COMMANDS])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dsprof")
def cli() -> None:
    """dsprof: profile PyTorch inference, diagnose it, fix it, and prove the fix."""


class SignalExit(int):
    """An exit status that entry() turns into this process ending by `signum`, as the script's
    process did: a parent then sees what it sees of `python script.py` (a returncode of
    -signum, a shell's $? of 128 + signum). Called in-process, main() returns the int."""

    signum: int

    def __new__(cls, code: int, signum: int) -> SignalExit:
        status = super().__new__(cls, code)
        status.signum = signum
        return status


# signals whose default action writes a core file: dsprof's own process must not leave one
_CORE_SIGNALS = {
    getattr(signal, name)
    for name in ("SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGSEGV",
                 "SIGSYS", "SIGXCPU", "SIGXFSZ")
    if hasattr(signal, name)
}  # fmt: skip


def end_by_signal(signum: int) -> None:
    """End this process by signum's default action (how python ends after an uncaught
    KeyboardInterrupt); returns only where that action does not end a process."""
    sys.stdout.flush()
    sys.stderr.flush()
    if signum in _CORE_SIGNALS:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    if signum != signal.SIGKILL:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    os.kill(os.getpid(), signum)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: DsprofError becomes a one-line message and its exit code."""
    try:
        result = cli.main(args=argv, prog_name="dsprof", standalone_mode=False)
    except DsprofError as e:
        click.echo(f"dsprof: error: {e}", err=True)
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("dsprof: aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    return result if isinstance(result, int) else 0


def entry() -> None:
    """The `dsprof` console script and `python -m dsprof`: main(), then exit with its code.

    Before the interpreter's own teardown, every live object is moved out of the garbage
    collector's reach (gc.freeze): the final full collection would otherwise walk pandas' and
    pyarrow's millions of objects for nothing (~80 ms measured after `dsprof analyze`). atexit
    handlers and finalizers still run.
    """
    code = main()
    gc.freeze()
    if isinstance(code, SignalExit):
        end_by_signal(code.signum)
    sys.exit(int(code))


if __name__ == "__main__":
    entry()
