"""Real `dsprof run` runs of the planted-bottleneck scripts in tests/planted/, one per script per
test session, shared by tests/test_planted.py and the analyzers' real-run tests.

Each run is the real CLI in a subprocess (`python -m dsprof run --out <tmp> -q <script>`), so the
runner, the collectors, torch.profiler and the registry all take part.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dsprof.store import RunData, load_run

PLANTED_DIR = Path(__file__).parent / "planted"
# how long one planted run may take on a loaded 2-core machine
RUN_TIMEOUT_S = 120

_ROOT = Path(tempfile.mkdtemp(prefix="dsprof-planted-"))
atexit.register(shutil.rmtree, _ROOT, True)


@functools.cache
def planted_run(script: str) -> RunData:
    """Run tests/planted/<script>.py under `dsprof run` once per session and load the run."""
    out = _ROOT / script
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dsprof",
            "run",
            "--out",
            str(out),
            "-q",
            str(PLANTED_DIR / f"{script}.py"),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"dsprof run {script}.py exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        )
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    return load_run(folder)
