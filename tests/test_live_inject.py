"""`dsprof trace PID --inject` for real: PEP 768's sys.remote_exec starts the agent in a running
Python 3.14 process that did not opt in, and the trace is taken; a target that disables remote
debugging, and --inject with no one to confirm, are clear errors that change nothing.

Both sides run on a Python 3.14+ with torch: this interpreter when it is one, else the command
in $DSPROF_PYTHON314 (tests/py314_chroot.sh builds one on Debian: sid's python3.14 in a
chroot). Skipped, saying so, where there is none (this project's Debian 12 has 3.11)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from live_support import env, loop_service

from dsprof.store.documents import read_capture


@pytest.fixture(scope="module")
def py314() -> list[str]:
    """The command of a Python 3.14+ with torch and sys.remote_exec (skips without one)."""
    spec = os.environ.get("DSPROF_PYTHON314")
    if sys.version_info >= (3, 14):
        cmd = [sys.executable]
    elif spec:
        cmd = shlex.split(spec)
    else:
        pytest.skip(
            f"--inject needs Python 3.14+ (sys.remote_exec, PEP 768) on both sides; this is "
            f"{sys.version.split()[0]} and DSPROF_PYTHON314 is not set (tests/py314_chroot.sh "
            "builds one)"
        )
    probe = subprocess.run(
        [*cmd, "-c", "import sys, torch; assert hasattr(sys, 'remote_exec')"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env(),
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"{shlex.join(cmd)} is no Python 3.14+ with torch: {last}")
    return cmd


def _dsprof(py: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*py, "-m", "dsprof", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env=env(),
        stdin=subprocess.DEVNULL,
    )


def _target(py: list[str], extra_env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """loop_service.py without the opt-in, on py, once it is ready."""
    return loop_service(
        "--no-agent", "--exit-after", "150", agent=False, python=py, extra_env=extra_env
    )


@pytest.mark.slow  # ~25 s on a busy 2-core machine: two traces
def test_inject_starts_the_agent_in_a_process_that_did_not_opt_in(py314, tmp_path):
    with _target(py314) as svc:
        r = _dsprof(py314, "trace", str(svc.pid), "--inject", "--yes", "--steps", "3",
                    "--out", str(tmp_path / "runs"), cwd=tmp_path)  # fmt: skip
        assert r.returncode == 0, r.stderr
        # it said what it runs before running it
        assert "sys.remote_exec" in r.stderr and "dsprof.serve_on_demand()" in r.stderr
        (run,) = (tmp_path / "runs").iterdir()
        info = read_capture(run / "capture.json")
        assert info.status == "ok" and info.steps_traced >= 3, info
        assert info.pid == svc.pid
        # the agent stays: the next trace needs no --inject
        again = _dsprof(py314, "trace", str(svc.pid), "--steps", "2", "--no-analyze",
                        "--out", str(tmp_path / "again"), cwd=tmp_path)  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert svc.poll() is None, "the service keeps running"


def test_a_target_that_disables_remote_debugging_is_a_clear_error(py314, tmp_path):
    with _target(py314, {"PYTHON_DISABLE_REMOTE_DEBUG": "1"}) as svc:
        r = _dsprof(py314, "trace", str(svc.pid), "--inject", "--yes", "--steps", "2",
                    "--out", str(tmp_path / "runs"), cwd=tmp_path)  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert "PYTHON_DISABLE_REMOTE_DEBUG" in r.stderr and "serve_on_demand()" in r.stderr
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "runs").exists()
        assert svc.poll() is None


def test_inject_with_no_one_to_confirm_runs_nothing(py314, tmp_path):
    with _target(py314) as svc:
        r = _dsprof(py314, "trace", str(svc.pid), "--inject", "--steps", "2", cwd=tmp_path)
        assert r.returncode == 2 and "--yes" in r.stderr, r.stderr
        # nothing was started in it: it still has no agent
        after = _dsprof(py314, "trace", str(svc.pid), "--steps", "2", cwd=tmp_path)
        assert after.returncode == 2 and "does not accept on-demand traces" in after.stderr
        assert not (tmp_path / ".dsprof").exists()
