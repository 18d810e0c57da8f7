"""The script's stdout and stderr: shown on the terminal as they come, and saved under logs/."""

from __future__ import annotations

import codecs
import io
import os
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

# torch's profiler prints these on stderr at every start/stop, and (once) when recording starts
# or stops while another thread is inside an op; they are not the script's output (torchrun
# prefixes each worker's lines with "[default0]:"). logs/stderr.log keeps them.
_NOISE_LINE = re.compile(rb"^(\[[^\]]*\]:)?(USDT:|\[W\d+ [\d:.]+ collection\.cpp:\d+\] Warning: )")
_RANK_PREFIX = re.compile(rb"\[[^\]\n]*\]:")
# two threads' noise lines written into one another: the line holds two marks, and the newline
# it lacks comes later as an empty line
_NOISE_MARK = re.compile(rb"USDT:|\[W\d+ [\d:.]+ collection\.cpp:\d+\] Warning: ")
# torch writes a noise line and its newline in separate writes: a line that starts with a noise
# mark waits for its newline; a shorter start that could still become one ("[", "US") waits
# this long for more before it is shown as the script's (a prompt such as "[y/N] ")
HOLD_S = 1.0


def _may_be_noise(start: bytes) -> bool:
    """Whether an unfinished line could still turn out to be a noise line."""
    if _NOISE_LINE.match(start):
        return True
    prefix = _RANK_PREFIX.match(start)
    if prefix is None and start.startswith(b"[") and b"]" not in start:
        return True  # a rank prefix or a collection.cpp warning, still being written
    rest = start[prefix.end() :] if prefix else start
    return b"USDT:".startswith(rest) or rest.startswith(b"[W")


class NoiseFilter:
    """Drops torch's profiler lines from a byte stream, passing everything else on unchanged.

    Whole lines are judged: a noise line goes with its newline, and the script's own output,
    blank lines and partial lines (prompts, progress bars) pass as they come. Only an unfinished
    line that starts like noise is held: until its newline once it has a noise mark (torch's
    thread may be descheduled between the two writes on a busy machine), for at most HOLD_S
    (`hold_until`) while it is too short to tell.
    """

    def __init__(self) -> None:
        self._held = b""
        self._mid_line = False  # part of the current line was passed on: the rest is the script's
        self._owed_newlines = 0  # newlines of noise lines written into another noise line
        self.hold_until: float | None = None

    def feed(self, chunk: bytes) -> bytes:
        data, self._held = self._held + chunk, b""
        out: list[bytes] = []
        *lines, tail = data.split(b"\n")
        # a line still too short to tell keeps the time it began to be held
        since = self.hold_until - HOLD_S if self.hold_until is not None and not lines else None
        for line in lines:
            if self._mid_line:
                out.append(line + b"\n")
            elif _NOISE_LINE.match(line):
                self._owed_newlines += len(_NOISE_MARK.findall(line)) - 1
            elif not line and self._owed_newlines > 0:
                self._owed_newlines -= 1
            else:
                self._owed_newlines = 0
                out.append(line + b"\n")
            self._mid_line = False
        self.hold_until = None
        if tail:
            if not self._mid_line and _NOISE_LINE.match(tail):
                self._held = tail  # torch's: its newline follows
            elif not self._mid_line and _may_be_noise(tail):
                self._held = tail
                self.hold_until = (since or time.monotonic()) + HOLD_S
            else:
                out.append(tail)
                self._mid_line = True
        return b"".join(out)

    def flush(self) -> bytes:
        """The held start of a line, passed on as the script's (its time is up, or the end)."""
        held, self._held, self.hold_until = self._held, b"", None
        if held:
            self._mid_line = True
        return held


class _Echo:
    """Writes the script's bytes to our stdout or stderr: as bytes to a real text stream's
    buffer, decoded incrementally otherwise (the live progress line's proxy), so a character
    split between two reads is not garbled."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def write(self, data: bytes, *, final: bool = False) -> None:
        # the stream is looked up per write: the live progress line swaps sys.stdout for a proxy
        stream = getattr(sys, self.name)
        buffer = getattr(stream, "buffer", None) if isinstance(stream, io.TextIOWrapper) else None
        if buffer is not None:
            if data:
                stream.flush()  # what dsprof itself printed comes first
                buffer.write(data)
                buffer.flush()
            return
        text = self._decoder.decode(data, final=final)
        if text:
            stream.write(text)
            stream.flush()


class Tee:
    """Copies the child's two pipes to our stdout/stderr (when echo) and to log files."""

    def __init__(
        self, proc: subprocess.Popen[bytes], stdout_log: Path, stderr_log: Path, *, echo: bool
    ) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        self._threads = [
            threading.Thread(
                target=self._pump,
                args=(proc.stdout, stdout_log, "stdout" if echo else None),
                daemon=True,
            ),
            threading.Thread(
                target=self._pump,
                args=(proc.stderr, stderr_log, "stderr" if echo else None),
                daemon=True,
            ),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(pipe: IO[bytes], log_path: Path, echo_to: str | None) -> None:
        fd = pipe.fileno()
        echo = _Echo(echo_to) if echo_to is not None else None
        noise = NoiseFilter()
        with open(log_path, "ab") as log:
            while True:
                if noise.hold_until is not None and echo is not None:
                    wait = max(noise.hold_until - time.monotonic(), 0.0)
                    if not select.select([fd], [], [], wait)[0]:
                        echo = _echo(echo, noise.flush())
                        continue
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                log.write(chunk)
                log.flush()
                if echo is not None:
                    echo = _echo(echo, noise.feed(chunk))
            if echo is not None:
                _echo(echo, noise.flush(), final=True)
        pipe.close()

    def join(self) -> None:
        for t in self._threads:
            t.join(timeout=10)


def _echo(echo: _Echo, data: bytes, *, final: bool = False) -> _Echo | None:
    """Pass data on; None once our terminal went away (the pump keeps logging)."""
    try:
        echo.write(data, final=final)
    except (OSError, ValueError):
        return None
    return echo
