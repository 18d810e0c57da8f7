"""Options and arguments that several subcommands take, written once so that their names,
defaults and wording agree from one command to the next."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dsprof.core.errors import UsageError
from dsprof.store.layout import DEFAULT_RUNS_DIR

F = TypeVar("F", bound=Callable[..., Any])


def out_option(what: str = "the run folder") -> Callable[[F], F]:
    """--out DIR: the directory that receives the run folder a command writes."""
    return click.option(
        "--out",
        type=click.Path(path_type=Path),
        default=DEFAULT_RUNS_DIR,
        show_default=True,
        help=f"Directory that receives {what}.",
    )


def run_name_option(flag: str = "--name", instead_of: str = "the service's") -> Callable[[F], F]:
    """--name NAME: the name in the run folder's name, in place of the script's or service's."""
    return click.option(flag, help=f"Name used in the run folder instead of {instead_of}.")


def runs_dir_option() -> Callable[[F], F]:
    """--runs-dir DIR: where a command looks up run ids (the store's default when not given)."""
    return click.option(
        "--runs-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=f"Where run ids are looked up (default {DEFAULT_RUNS_DIR}).",
    )


def format_option(choices: tuple[str, ...], help: str) -> Callable[[F], F]:
    """--format: how a command writes its result; the first choice is the default."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default=choices[0],
        show_default=True,
        help=help,
    )


def slo_option(help: str, metavar: str = "SPEC") -> Callable[[F], F]:
    """--slo SPEC, repeatable: the objectives the command checks its result against."""
    return click.option("--slo", "slos", multiple=True, metavar=metavar, help=help)


def script_target(
    command: str, module: str | None, script_and_args: tuple[str, ...]
) -> tuple[str, list[str]]:
    """(target, its arguments) of a command that runs a script: `-m MODULE [ARGS]` or
    `SCRIPT [ARGS]`; a UsageError naming the command when neither is given."""
    if module:
        return module, list(script_and_args)
    if script_and_args:
        return script_and_args[0], list(script_and_args[1:])
    raise UsageError(
        f"dsprof {command} needs a script (dsprof {command} script.py [args]) or -m module"
    )
