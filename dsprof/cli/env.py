"""`dsprof env`: what dsprof can collect on this machine, and why not."""

from __future__ import annotations

import click


@click.command("env")
def command() -> int:
    """Show the machine, torch, and each collector's availability with the reason."""
    from rich.console import Console

    from dsprof.collectors.availability import check_all
    from dsprof.report.text import env_table

    Console().print(env_table(check_all()))
    return 0
