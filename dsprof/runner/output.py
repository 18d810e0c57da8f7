"""The script's stdout and stderr: shown on the terminal as they come, and saved under logs/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

# torch's profiler prints these on stderr at every start/stop, and (once) when recording starts
# or stops while another thread is inside an op; they are not the script's output (torchrun
# prefixes each worker's lines with "[default0]:"). logs/stderr.log keeps them.
_NOISE_MARKS = (b"USDT:", b"collection.cpp:")
_NOISE_LINE = re.compile(rb"^(\[[^\]]*\]:)?(USDT:|\[W\d+ [\d:.]+ collection\.cpp:\d+\] Warning: )")


def _without_noise(chunk: bytes) -> bytes:
    if not any(mark in chunk for mark in _NOISE_MARKS):
        return chunk
    return b"".join(line for line in chunk.splitlines(keepends=True) if not _NOISE_LINE.match(line))


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
    def _pump(pipe: IO[bytes], log_path: Path, echo: str | None) -> None:
        # the stream is looked up per write: the live progress line swaps sys.stdout for a proxy
        fd = pipe.fileno()
        with open(log_path, "ab") as log:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                log.write(chunk)
                log.flush()
                if echo is not None:
                    chunk = _without_noise(chunk)
                    try:
                        stream = getattr(sys, echo)
                        stream.write(chunk.decode("utf-8", errors="replace"))
                        stream.flush()
                    except (OSError, ValueError):
                        echo = None  # our terminal went away; keep logging
        pipe.close()

    def join(self) -> None:
        for t in self._threads:
            t.join(timeout=10)
