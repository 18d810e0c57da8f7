"""The control socket's safety: a private directory, mode 0600, stale sockets, peers; the target
checks (no such PID, another user's), all with real sockets and processes."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dsprof.live import control
from dsprof.live.target import TargetError, find_by_name, resolve_pid


@pytest.fixture
def control_dir(tmp_path, monkeypatch):
    d = tmp_path / "ctl"
    monkeypatch.setenv(control.CONTROL_DIR_ENV, str(d))
    return d


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _stale_socket(path: Path) -> None:
    """A socket file nothing listens on (what a killed process leaves behind)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()


def test_the_socket_is_user_only(control_dir):
    sock, path = control.bind_socket(os.getpid())
    try:
        assert path.parent == control_dir
        assert stat.S_IMODE(os.stat(control_dir).st_mode) == 0o700
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        assert control.answers(path)
    finally:
        sock.close()
        path.unlink()


def test_a_loose_directory_of_ours_is_closed_before_use(control_dir):
    control_dir.mkdir(mode=0o755)
    os.chmod(control_dir, 0o755)
    sock, _ = control.bind_socket(os.getpid())
    sock.close()
    assert stat.S_IMODE(os.stat(control_dir).st_mode) == 0o700


def test_a_symlinked_directory_is_refused(tmp_path, monkeypatch):
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    link = tmp_path / "ctl"
    link.symlink_to(real)
    with pytest.raises(control.ControlError, match="not a directory"):
        control.private_dir(link)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to make a directory of another user")
def test_a_directory_of_another_user_is_refused(tmp_path):
    d = tmp_path / "ctl"
    d.mkdir(mode=0o700)
    os.chown(d, 65534, 65534)
    with pytest.raises(control.ControlError, match="belongs to uid 65534"):
        control.private_dir(d)


def test_a_stale_socket_of_this_pid_is_replaced(control_dir):
    control.private_dir(control_dir)
    path = control_dir / control.socket_name(os.getpid())
    _stale_socket(path)
    assert not control.answers(path)
    sock, bound = control.bind_socket(os.getpid())
    try:
        assert bound == path and control.answers(path)
    finally:
        sock.close()


def test_stale_sockets_of_dead_processes_are_swept_and_others_kept(control_dir):
    control.private_dir(control_dir)
    dead = control_dir / control.socket_name(_dead_pid())
    _stale_socket(dead)
    not_ours = control_dir / "notes.txt"
    not_ours.write_text("kept")
    live_pid_file = control_dir / control.socket_name(os.getppid())  # alive: not swept
    _stale_socket(live_pid_file)
    assert control.sweep_stale(control_dir) == [dead]
    assert not dead.exists() and not_ours.exists() and live_pid_file.exists()


def test_find_socket_removes_a_stale_one_and_finds_none(control_dir):
    control.private_dir(control_dir)
    path = control_dir / control.socket_name(os.getpid())
    _stale_socket(path)
    assert control.find_socket([os.getpid()]) is None
    assert not path.exists()


def test_a_busy_agent_whose_backlog_is_full_is_found_not_removed(control_dir):
    """A listener that accepts nothing for a while (its thread waits on the GIL) is alive."""
    sock, path = control.bind_socket(os.getpid())
    waiting = _fill_backlog(path)  # the next connect is refused with EAGAIN
    try:
        assert control.find_socket([os.getpid()]) == (os.getpid(), path)
        assert not control.remove_stale(path) and path.exists()
    finally:
        for c in waiting:
            c.close()
        sock.close()
        path.unlink()


def _fill_backlog(path: Path) -> list[socket.socket]:
    """Connections nobody accepts until the next connect is refused with EAGAIN."""
    waiting: list[socket.socket] = []
    while True:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(str(path))
        except BlockingIOError:
            c.close()
            return waiting
        waiting.append(c)


def test_a_client_waits_out_a_full_backlog(control_dir):
    """The agent's thread accepts late (busy behind the GIL): the client connects once it does."""
    sock, path = control.bind_socket(os.getpid())
    waiting = _fill_backlog(path)
    accepted: list[socket.socket] = []

    def accept_late() -> None:
        time.sleep(0.5)
        sock.settimeout(10)  # bounded, whatever the client does
        with contextlib.suppress(OSError):
            for _ in range(len(waiting) + 1):
                accepted.append(sock.accept()[0])

    t = threading.Thread(target=accept_late, daemon=True)
    t.start()
    try:
        conn = control.AgentConnection.open(path, expected_pid=os.getpid())
        conn.close()
    finally:
        t.join(10)
        for c in waiting + accepted:
            c.close()
        sock.close()
        path.unlink()


def test_a_probe_never_takes_a_socket_being_set_up_for_stale(control_dir):
    """While an agent binds, a client probing the same path must not meet a socket that is bound
    but not yet listening (it refuses connections, and would be removed as stale)."""
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            control.find_socket([os.getpid()])

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    lost = 0
    try:
        for _ in range(1500):  # the old bind-then-listen lost ~2 in 1500 here
            sock, path = control.bind_socket(os.getpid())
            lost += not path.exists()
            sock.close()
            path.unlink(missing_ok=True)
    finally:
        stop.set()
        t.join(10)
    assert lost == 0
    # no staging names left behind (the lock file stays: it is the directory's)
    assert [p.name for p in control_dir.iterdir()] == [control.LOCK_NAME]


def test_a_socket_put_in_place_after_the_stale_probe_is_not_removed(control_dir, monkeypatch):
    """A client finds <pid>.sock dead; before it unlinks the file, an agent of that PID binds
    a live socket there. The client must not take the live one away."""
    control.private_dir(control_dir)
    path = control_dir / control.socket_name(os.getpid())
    _stale_socket(path)
    real_answers = control.answers
    live: list[socket.socket] = []
    probes = []

    def probe_then_agent_binds(p: Path, timeout_s: float = 1.0) -> bool:
        answer = real_answers(p, timeout_s)
        probes.append(answer)
        if len(probes) == 1:  # the client's first probe: dead; now the agent binds in the gap
            sock, bound = control.bind_socket(os.getpid())
            live.append(sock)
            assert bound == path
        return answer

    monkeypatch.setattr(control, "answers", probe_then_agent_binds)
    try:
        assert not control.remove_stale(path)
        assert path.exists() and real_answers(path)
    finally:
        for sock in live:
            sock.close()


def test_a_dead_processes_half_set_up_socket_is_swept(control_dir):
    control.private_dir(control_dir)
    staging = control_dir / f"{control.STAGING_PREFIX}{_dead_pid()}-0123abcd"
    _stale_socket(staging)
    assert control.sweep_stale(control_dir) == [staging]


def test_a_file_in_the_way_is_not_removed(control_dir):
    control.private_dir(control_dir)
    path = control_dir / control.socket_name(os.getpid())
    path.write_text("not a socket")
    with pytest.raises(control.ControlError, match="not your socket"):
        control.bind_socket(os.getpid())
    assert path.read_text() == "not a socket"


def test_the_client_refuses_a_socket_served_by_another_pid(control_dir):
    sock, path = control.bind_socket(os.getpid())
    try:
        with pytest.raises(control.ControlError, match=f"served by PID {os.getpid()}"):
            control.AgentConnection.open(path, expected_pid=os.getpid() + 1)
    finally:
        sock.close()


def test_no_such_pid_is_a_clear_error():
    pid = _dead_pid()
    with pytest.raises(TargetError, match=f"no process with PID {pid}"):
        resolve_pid(pid)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to start a process as another user")
def test_another_users_process_is_refused():
    proc = subprocess.Popen(["sleep", "30"], user=65534)
    try:
        time.sleep(0.2)
        with pytest.raises(TargetError, match="not to you"):
            resolve_pid(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_find_by_name():
    marker = f"dsprof-live-test-{os.getpid()}"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                assert find_by_name(marker).pid == proc.pid
                break
            except TargetError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with pytest.raises(TargetError, match="no process of yours matches"):
            find_by_name(marker + "-none")
        with pytest.raises(TargetError, match="not a regular expression"):
            find_by_name("(")
    finally:
        proc.kill()
        proc.wait()
