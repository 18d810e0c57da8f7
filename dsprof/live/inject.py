"""Starting the agent in a process that did not opt in, through Python 3.14's sys.remote_exec.

PEP 768 (Python 3.14) lets a process of the same user run a script file in another Python
process at its next safe point, on its main thread. dsprof uses it only when asked
(`dsprof trace PID --inject`) and after saying what it will do: the script imports dsprof from
this installation and calls `dsprof.serve_on_demand()`; nothing else changes in the service.
Both interpreters must be 3.14 or newer (the same minor version), and the target must not
disable it (PYTHON_DISABLE_REMOTE_DEBUG, -X disable_remote_debug).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dsprof.core.errors import UsageError
from dsprof.live.target import Target

REMOTE_EXEC_VERSION = (3, 14)
# how long the injected agent gets to open its socket (the target runs the script at its next
# safe point: at once when busy, at its next bytecode when blocked in a call)
INJECT_WAIT_S = 15.0


def target_python(target: Target) -> tuple[int, int] | None:
    """The (major, minor) of the target's interpreter, None when it cannot be told."""
    import psutil

    try:
        exe = psutil.Process(target.pid).exe()
    except psutil.Error:
        return None
    if not exe or not os.path.exists(exe):
        return None
    try:
        out = subprocess.run(
            [exe, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def can_inject(target: Target) -> tuple[bool, str]:
    """(possible, why not) for injecting the agent into target."""
    mine = sys.version_info[:2]
    if not hasattr(sys, "remote_exec"):
        return False, (
            f"injecting the agent without the opt-in needs Python 3.14's sys.remote_exec "
            f"(PEP 768); this dsprof runs on Python {mine[0]}.{mine[1]}"
        )
    theirs = target_python(target)
    if theirs is None:
        return False, f"cannot tell which Python PID {target.pid} runs"
    if theirs != mine:
        return False, (
            f"PID {target.pid} runs Python {theirs[0]}.{theirs[1]}; sys.remote_exec needs the same "
            f"version on both sides (this dsprof runs {mine[0]}.{mine[1]})"
        )
    return True, ""


def injection_note(target: Target) -> str:
    """One sentence for the not-opted-in message."""
    ok, why = can_inject(target)
    if ok:
        return (
            "Its Python supports sys.remote_exec: `dsprof trace PID --inject` can start the "
            "agent in it without a restart (it says what it runs first)."
        )
    return f"({why}.)"


def agent_script() -> str:
    """The code run inside the target: import this dsprof and start the agent."""
    root = str(Path(__file__).resolve().parents[2])
    return (
        "import sys\n"
        f"if {root!r} not in sys.path:\n"
        f"    sys.path.append({root!r})\n"
        "import dsprof\n"
        "dsprof.serve_on_demand()\n"
    )


def describe_injection(target: Target) -> str:
    """What --inject will do, said before it does it."""
    return (
        f"dsprof will run this code inside PID {target.pid} ({target.label}) with sys.remote_exec, "
        "on its main thread at its next safe point:\n\n"
        + agent_script()
        + "\nIt starts the on-demand agent (a Unix socket only you can reach, one idle thread) "
        "and initialises torch.profiler once; the agent stays until the process exits."
    )


def inject_agent(target: Target) -> None:
    """Run agent_script() in target and wait until its socket answers (UsageError if not)."""
    ok, why = can_inject(target)
    if not ok:
        raise UsageError(why)
    from dsprof.live import control

    fd, name = tempfile.mkstemp(prefix="dsprof-agent-", suffix=".py")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(agent_script())
        os.chmod(name, 0o600)
        remote_exec = getattr(sys, "remote_exec")  # noqa: B009 - absent before 3.14
        try:
            remote_exec(target.pid, name)
        except PermissionError as e:
            raise UsageError(
                f"not allowed to attach to PID {target.pid} ({e}): sys.remote_exec needs the "
                "rights of a debugger (the same user and kernel.yama.ptrace_scope 0 or 1 with "
                "the target not protected, or CAP_SYS_PTRACE)"
            ) from None
        except (RuntimeError, OSError) as e:
            # 3.14 says "Remote debugging is not enabled in the remote process" when the target
            # runs with PYTHON_DISABLE_REMOTE_DEBUG, -X disable_remote_debug or a build without it
            raise UsageError(
                f"sys.remote_exec into PID {target.pid} failed: {e} (started with "
                "PYTHON_DISABLE_REMOTE_DEBUG or -X disable_remote_debug?). Opt in instead: "
                "`import dsprof; dsprof.serve_on_demand()` at start-up, or `dsprof run "
                "--on-demand ...`"
            ) from None
        deadline = time.monotonic() + INJECT_WAIT_S
        while time.monotonic() < deadline:
            if control.find_socket([target.pid]) is not None:
                return
            time.sleep(0.2)
    finally:
        # the target reads the file when it runs it: keep it until then
        time.sleep(0.5)
        Path(name).unlink(missing_ok=True)
    raise UsageError(
        f"PID {target.pid} did not start the agent within {INJECT_WAIT_S:g} s: its main thread "
        "runs no Python code now (blocked in a long call: a C extension, a lock or a read "
        "without a timeout). The script was removed, so the pending request "
        "starts nothing when the thread wakes."
    )
