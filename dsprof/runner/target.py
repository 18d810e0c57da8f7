"""Checking the script or module before anything runs: a clear error, exit 2."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from dsprof.core.errors import UsageError


def check_target(target: str, module: bool) -> None:
    """Raise UsageError when the script is missing or not Python, or the module is not found."""
    if module:
        _check_module(target)
        return
    path = Path(target)
    if not path.exists():
        raise UsageError("no such script", path=path)
    if path.is_dir():
        raise UsageError("is a directory, not a Python script (use -m for a package)", path=path)
    if not os.access(path, os.R_OK):
        raise UsageError("the script is not readable", path=path)
    try:
        source = path.read_bytes()
        compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as e:
        raise UsageError(f"is not a Python script: {e.msg} (line {e.lineno})", path=path) from None
    except ValueError as e:  # null bytes: a binary file
        raise UsageError(f"is not a Python script: {e}", path=path) from None


def _check_module(name: str) -> None:
    # the child puts the cwd first on sys.path, as `python -m` does; look it up the same way
    sys.path.insert(0, os.getcwd())
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as e:
        raise UsageError(f"cannot find module {name!r}: {e}") from None
    finally:
        sys.path.pop(0)
    if spec is None:
        raise UsageError(f"no module named {name!r}")
