"""`python -m dsprof`."""

from dsprof.cli.main import entry

entry()
