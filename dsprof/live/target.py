"""The running process dsprof watch and dsprof trace look at: found by PID or by name, checked.

Only the user's own processes: a PID of another user is refused (as root too) rather than
sampled with half the fields denied, and the control socket refuses other users anyway.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import psutil

from dsprof.core.errors import UsageError


class TargetError(UsageError):
    """No such process, another user's process, or a name that matches none or several."""


@dataclass(frozen=True)
class Target:
    """A running process: what the watch and the run folder call it."""

    pid: int
    name: str
    cmdline: tuple[str, ...]
    cwd: str | None
    create_time: float

    @property
    def label(self) -> str:
        """A short name for titles and run folders: the script, module or executable."""
        return command_label(self.cmdline) or self.name


def command_label(cmdline: tuple[str, ...] | list[str]) -> str:
    """`python serve.py --port 1` -> serve; `python -m pkg.app` -> app; `uvicorn app:x` -> uvicorn."""
    args = list(cmdline)
    if not args:
        return ""
    exe = os.path.basename(args[0])
    if exe.startswith("python"):
        rest = [a for a in args[1:] if a not in ("-u", "-O", "-B", "-E", "-s", "-S")]
        if rest[:1] == ["-m"] and len(rest) > 1:
            return rest[1].rsplit(".", 1)[-1]
        if rest and not rest[0].startswith("-"):
            return os.path.splitext(os.path.basename(rest[0]))[0]
    return exe


def _owner_uid(proc: psutil.Process) -> int:
    return int(proc.uids().real)


def _describe(proc: psutil.Process) -> Target:
    with proc.oneshot():
        try:
            cmdline = tuple(proc.cmdline())
        except psutil.AccessDenied:
            cmdline = ()
        try:
            cwd: str | None = proc.cwd()
        except (psutil.AccessDenied, psutil.ZombieProcess):
            cwd = None
        return Target(proc.pid, proc.name(), cmdline, cwd, proc.create_time())


def resolve_pid(pid: int) -> Target:
    """The process `pid`, which must exist, be alive and belong to this user."""
    try:
        proc = psutil.Process(pid)
        uid = _owner_uid(proc)
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise TargetError(f"PID {pid} has exited (a zombie waiting for its parent)")
    except psutil.NoSuchProcess:
        raise TargetError(f"no process with PID {pid}") from None
    except psutil.AccessDenied:
        raise TargetError(f"PID {pid}: access denied (it belongs to another user)") from None
    if uid != os.getuid():
        try:
            import pwd

            owner = pwd.getpwuid(uid).pw_name
        except (KeyError, ImportError):
            owner = f"uid {uid}"
        raise TargetError(
            f"PID {pid} belongs to {owner}, not to you (uid {os.getuid()}): dsprof watches and "
            "traces only your own processes; run it as that user"
        )
    try:
        return _describe(proc)
    except psutil.NoSuchProcess:
        raise TargetError(f"PID {pid} exited while dsprof looked at it") from None


def _ancestors() -> set[int]:
    """This process and its parents (a `dsprof watch --name dsprof` must not find itself)."""
    found = {os.getpid()}
    try:
        for p in psutil.Process().parents():
            found.add(p.pid)
    except psutil.Error:
        pass
    return found


def find_by_name(pattern: str) -> Target:
    """The one process of this user whose command line matches the regex (as pgrep -f does).

    Several matches that form one tree (a server and its workers) resolve to the top one;
    unrelated matches are an error listing them.
    """
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise TargetError(f"--name {pattern!r} is not a regular expression: {e}") from None
    me, skip = os.getuid(), _ancestors()
    matches: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["pid", "name", "cmdline", "uids"]):
        info = proc.info
        if info["pid"] in skip or info["uids"] is None or info["uids"].real != me:
            continue
        text = " ".join(info["cmdline"] or []) or (info["name"] or "")
        if rx.search(text):
            matches[info["pid"]] = proc
    if not matches:
        raise TargetError(f"no process of yours matches --name {pattern!r}")
    tops = []
    for proc in matches.values():
        try:
            parents = {p.pid for p in proc.parents()}
        except psutil.Error:
            continue
        if not parents & matches.keys():
            tops.append(proc)
    if len(tops) != 1:
        listed = "; ".join(f"{p.pid}: {' '.join(p.info['cmdline'] or [])[:80]}" for p in tops[:8])
        raise TargetError(
            f"{len(tops)} unrelated processes match --name {pattern!r} ({listed}); pass one PID"
        )
    return resolve_pid(tops[0].pid)


def tree_pids(pid: int) -> list[int]:
    """pid and its live descendants ([] when pid is gone)."""
    try:
        root = psutil.Process(pid)
        return [pid, *(c.pid for c in root.children(recursive=True))]
    except psutil.Error:
        return []


def is_alive(pid: int, create_time: float | None = None) -> bool:
    """True while pid runs (and is the same process, when its create_time is given)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 0.01
    except psutil.Error:
        return False
