"""Helpers shared by the `dsprof fix` end-to-end tests: run the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data" / "fix"


def dsprof(*args: str, cwd: Path, timeout: int = 500) -> subprocess.CompletedProcess[str]:
    """`python -m dsprof ARGS` in `cwd`, offline for Hugging Face."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "dsprof", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def run_fix(cwd: Path, script: str, *args: str) -> dict:
    """`dsprof fix --json [OPTS] script [-- SCRIPT ARGS]` on a copy of tests/data/fix/<script>."""
    i = args.index("--") if "--" in args else len(args)
    opts, script_args = list(args[:i]), list(args[i + 1 :])
    shutil.copy(DATA / script, cwd / script)
    out = dsprof("fix", "--json", *opts, script, *script_args, cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)  # stdout holds the document and nothing else


def trial(doc: dict, recipe: str) -> dict:
    """The trial of one recipe (or a '+'-joined combination) in a --json document."""
    return next(t for t in doc["trials"] if t["recipe"] == recipe)
