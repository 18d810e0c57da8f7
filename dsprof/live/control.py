"""The local control socket between a service's on-demand agent and dsprof trace / dsprof watch.

Where: `<dir>/<pid>.sock`, dir the first of $DSPROF_CONTROL_DIR, $XDG_RUNTIME_DIR/dsprof and
<tmp>/dsprof-<uid>. The directory is created mode 0700 and must be owned by the user (a directory
of another owner, or a symlink, is refused: someone could be waiting there); the socket is chmod
0600 right after bind. No TCP. Each side checks the other's credentials (SO_PEERCRED): the agent
answers only its own user, the client talks only to the PID it asked for.

Protocol: JSON lines. The client sends {"op": ...}; the agent answers one line per event. Ops:
hello, stats (request counters), capture (accepted, started, done). See dsprof.live.agent.

Stale sockets (left by a process killed with its socket file in place, whose PID may now be
someone else's) are removed only when they are sockets of this user that nothing answers on.
Removing one and putting a socket in place both hold the directory's lock (an flock on
<dir>/.lock): a client must not unlink a live socket that an agent renamed into place between
the client's probe of the dead one and its unlink.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import socket
import stat
import struct
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsprof.core.errors import UsageError
from dsprof.core.live import PROTOCOL_VERSION

CONTROL_DIR_ENV = "DSPROF_CONTROL_DIR"
SOCKET_SUFFIX = ".sock"
# a line longer than this is not a dsprof message
MAX_LINE_BYTES = 1 << 20
CONNECT_TIMEOUT_S = 5.0
# connections waiting for the agent's accept(): probes and clients queue here while the agent's
# thread waits for the GIL behind a busy service
BACKLOG = 128
# a socket being set up (bound, not yet renamed to <pid>.sock): .binding-<pid>-<random>
STAGING_PREFIX = ".binding-"
# held while a socket path is taken away (stale) or put in place (an agent binding)
LOCK_NAME = ".lock"


class ControlError(UsageError):
    """The control socket cannot be used: unsafe directory, no agent, a refused request."""


def control_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """Candidate socket directories, in the order the agent picks them."""
    env = os.environ if env is None else env
    out: list[Path] = []
    if env.get(CONTROL_DIR_ENV):
        out.append(Path(env[CONTROL_DIR_ENV]))
    if env.get("XDG_RUNTIME_DIR"):
        out.append(Path(env["XDG_RUNTIME_DIR"]) / "dsprof")
    tmp = env.get("TMPDIR") or tempfile.gettempdir()
    out.append(Path(tmp) / f"dsprof-{os.getuid()}")
    return list(dict.fromkeys(out))


def socket_name(pid: int) -> str:
    return f"{pid}{SOCKET_SUFFIX}"


def private_dir(path: Path) -> Path:
    """Create (0700) or check the socket directory: ours, a real directory, closed to others."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except OSError as e:
        raise ControlError(
            f"cannot create the control directory: {e.strerror}", path=path
        ) from None
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ControlError("the control directory is not a directory (a symlink?)", path=path)
    if st.st_uid != os.getuid():
        raise ControlError(
            f"the control directory belongs to uid {st.st_uid}, not to you; remove it or set "
            f"{CONTROL_DIR_ENV}",
            path=path,
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)  # ours: close it to others before a socket goes in
    return path


def peer_credentials(sock: socket.socket) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of the other end of a Unix socket (Linux), None where unsupported."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def _is_our_socket(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISSOCK(st.st_mode) and st.st_uid == os.getuid()


def answers(path: Path, timeout_s: float = 1.0) -> bool:
    """True when something listens on the socket file.

    A listener whose backlog is full (an agent busy behind the GIL) refuses the connect with
    EAGAIN or lets it time out: it is alive, and its socket must not be taken for stale.
    """
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        s.connect(str(path))
        return True
    except (BlockingIOError, TimeoutError, InterruptedError):
        return True
    except OSError:
        return False
    finally:
        s.close()


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """The control directory's lock (see the module docstring); raises OSError when the lock
    file cannot be opened."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(directory / LOCK_NAME, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def remove_stale(path: Path) -> bool:
    """Remove a socket file of ours that nothing answers on; True when it was removed."""
    if not _is_our_socket(path) or answers(path):
        return False
    try:
        with _directory_lock(path.parent):
            # again under the lock: an agent may have put a live socket here since the probe
            if not _is_our_socket(path) or answers(path):
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return True
    except OSError:
        return False  # no lock, no removal: a stale file left is harmless, a live one taken is not


def sweep_stale(directory: Path) -> list[Path]:
    """Remove the sockets in directory left by processes that no longer exist."""
    removed: list[Path] = []
    with contextlib.suppress(OSError):
        for p in directory.iterdir():
            stem = _socket_pid(p.name)
            if stem is None or _pid_exists(stem):
                continue
            if remove_stale(p):
                removed.append(p)
    return removed


def _socket_pid(name: str) -> int | None:
    """The PID a socket file's name belongs to: <pid>.sock, or .binding-<pid>-<random>."""
    if name.endswith(SOCKET_SUFFIX):
        stem = name[: -len(SOCKET_SUFFIX)]
    elif name.startswith(STAGING_PREFIX):
        stem = name[len(STAGING_PREFIX) :].partition("-")[0]
    else:
        return None
    return int(stem) if stem.isdigit() else None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def bind_socket(pid: int, env: Mapping[str, str] | None = None) -> tuple[socket.socket, Path]:
    """The agent's listening socket at <first usable dir>/<pid>.sock, mode 0600."""
    errors = []
    for directory in control_dirs(env):
        try:
            private_dir(directory)
        except ControlError as e:
            errors.append(str(e))
            continue
        sweep_stale(directory)
        path = directory / socket_name(pid)
        # bound and listening under a private name first, then renamed into place: a client
        # probing meanwhile never meets <pid>.sock bound but not yet listening (it would
        # answer "refused" and be removed as stale)
        staging = directory / f"{STAGING_PREFIX}{pid}-{secrets.token_hex(4)}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(staging))
            os.chmod(staging, 0o600)  # the 0700 directory already keeps others out meanwhile
            sock.listen(BACKLOG)
            with _directory_lock(directory):
                _clear_own_path(path)
                os.rename(staging, path)
        except (OSError, ControlError) as e:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(staging)
            if isinstance(e, ControlError):
                raise
            errors.append(f"{path}: {e.strerror}")
            continue
        return sock, path
    raise ControlError("no usable control directory: " + "; ".join(errors))


def _clear_own_path(path: Path) -> None:
    """Make way for this process's socket at path: a stale one goes, anything else is an error."""
    if not os.path.lexists(path):
        return
    if not _is_our_socket(path):
        raise ControlError("a file that is not your socket is in the way; remove it", path=path)
    if answers(path):
        raise ControlError("an on-demand agent already listens for this process", path=path)
    os.unlink(path)  # stale: a dead process with this PID left it


def find_socket(pids: list[int], env: Mapping[str, str] | None = None) -> tuple[int, Path] | None:
    """The first (pid, socket) among pids (a process and its descendants) with a live agent.

    A socket file of ours that nothing answers on is stale and removed on the way.
    """
    found = find_sockets(pids, env, first=True)
    return found[0] if found else None


def find_sockets(
    pids: list[int], env: Mapping[str, str] | None = None, first: bool = False
) -> list[tuple[int, Path]]:
    """Every (pid, socket) among pids with a live agent (one per PID); stale ones removed."""
    out: list[tuple[int, Path]] = []
    for pid in pids:
        for directory in control_dirs(env):
            path = directory / socket_name(pid)
            if not _is_our_socket(path):
                continue
            if answers(path):
                out.append((pid, path))
                if first:
                    return out
                break
            remove_stale(path)
    return out


def choose_agent(pid: int, found: list[tuple[int, Path]]) -> tuple[int, Path] | None:
    """The agent a command about PID talks to: PID's own, else the only one among its
    descendants (a service under `dsprof run --on-demand`). Several descendants with agents
    (PID is a shell, a supervisor, init) is an error naming them: never a guess."""
    own = [f for f in found if f[0] == pid]
    if own:
        return own[0]
    pids = sorted({f[0] for f in found})
    if len(pids) > 1:
        listed = ", ".join(map(str, pids[:8])) + (" ..." if len(pids) > 8 else "")
        raise ControlError(
            f"{len(pids)} processes under PID {pid} accept on-demand traces (PIDs {listed}); "
            "name one of them"
        )
    return found[0] if found else None


def _connect_waiting(path: Path, timeout_s: float) -> socket.socket:
    """A connected socket; a full backlog (the agent is alive but busy) is waited out."""
    deadline = time.monotonic() + timeout_s
    pause = 0.01
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
            return sock
        except (BlockingIOError, InterruptedError) as e:
            sock.close()
            if time.monotonic() + pause > deadline:
                raise ControlError(
                    f"the agent accepted no connection in {timeout_s:g} s (its process is busy: "
                    f"{e.strerror})",
                    path=path,
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.2)
        except OSError as e:
            sock.close()
            raise ControlError(
                f"cannot connect to the agent: {e.strerror or e}", path=path
            ) from None


@dataclass
class AgentConnection:
    """One connection to an agent: send a JSON line, read JSON lines."""

    sock: socket.socket
    path: Path
    pid: int
    _buffer: bytes = b""

    @classmethod
    def open(cls, path: Path, expected_pid: int) -> AgentConnection:
        sock = _connect_waiting(path, CONNECT_TIMEOUT_S)
        creds = peer_credentials(sock)
        if creds is not None and (creds[1] != os.getuid() or creds[0] != expected_pid):
            sock.close()
            raise ControlError(
                f"the socket is served by PID {creds[0]} (uid {creds[1]}), not by PID "
                f"{expected_pid}: refusing to talk to it",
                path=path,
            )
        return cls(sock, path, expected_pid)

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def receive(self, timeout_s: float | None) -> dict[str, Any] | None:
        """The next message, None at EOF (the agent's process is gone); TimeoutError if none came."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no answer from the agent")
                self.sock.settimeout(left)
            else:
                self.sock.settimeout(None)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError("no answer from the agent") from None
            except OSError as e:
                if e.errno in (errno.ECONNRESET, errno.EPIPE):
                    return None
                raise
            if not chunk:
                return None
            self._buffer += chunk
            if len(self._buffer) > MAX_LINE_BYTES:
                raise ControlError("the agent sent a line too long to be a dsprof message")
        line, _, self._buffer = self._buffer.partition(b"\n")
        value = json.loads(line)
        if not isinstance(value, dict):
            raise ControlError("the agent sent something that is not a JSON object")
        return value

    def request(self, message: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
        """Send one op and return its single answer (ControlError on EOF or a refusal)."""
        self.send(message)
        answer = self.receive(timeout_s)
        if answer is None:
            raise ControlError(f"PID {self.pid} closed the control connection (did it exit?)")
        if not answer.get("ok", False):
            raise ControlError(f"PID {self.pid} refused: {answer.get('error', 'no reason given')}")
        return answer

    def hello(self) -> dict[str, Any]:
        """The agent's description; checks that both ends speak the same protocol."""
        answer = self.request({"op": "hello", "protocol": PROTOCOL_VERSION})
        if answer.get("protocol") != PROTOCOL_VERSION:
            raise ControlError(
                f"PID {self.pid} runs an agent of protocol {answer.get('protocol')!r}; this "
                f"dsprof speaks {PROTOCOL_VERSION}: use the same dsprof version on both sides"
            )
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> AgentConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def connect(pid: int, path: Path) -> Iterator[AgentConnection]:
    """A connection to the agent of pid at path, closed on exit."""
    conn = AgentConnection.open(path, pid)
    try:
        yield conn
    finally:
        conn.close()
