"""stdin for scripts run more than once (`dsprof fix`): record it in the first run, replay it after.

`cat inputs.txt | dsprof fix script.py` gives the baseline run the piped input; every later run
(reference, trials, the patched script's check) would otherwise find stdin at its end and run no
steps. The baseline's child reads stdin through a pipe that this module feeds, keeping a copy in
the baseline's logs/stdin.bin; later runs get that file as their stdin.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import IO

CHUNK = 65536


def stdin_is_fed() -> bool:
    """True when our stdin is a pipe or a file (input to replay), not a terminal or absent."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return False
    if os.isatty(0):
        return False
    # /dev/null is a character device: there is nothing to record, every run gets it as is
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode)


class StdinRecorder:
    """Copies our stdin to the child's stdin pipe and to a file, as the child reads it.

    The copy holds what was passed on to the child (up to one pipe buffer more than the script
    read). `close()` ends the copy when the child has exited, even if our stdin stays open.
    """

    def __init__(self, child_stdin: IO[bytes], copy_path: Path) -> None:
        self._child = child_stdin
        self._copy = open(copy_path, "wb")  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._pump, name="dsprof-stdin", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            try:
                chunk = os.read(0, CHUNK)
            except OSError:
                chunk = b""
            with self._lock:
                if self._closed:
                    return
                if chunk:
                    self._copy.write(chunk)
                    self._copy.flush()
            try:
                if not chunk:
                    self._child.close()  # end of our input: the script sees end-of-file
                    return
                # outside the lock: a script that stops reading blocks this write, not close()
                self._child.write(chunk)
                self._child.flush()
            except (OSError, ValueError):
                return  # the script closed its stdin or exited

    def close(self) -> None:
        """Stop copying (the child has exited) and close the file."""
        with self._lock:
            self._closed = True
            self._copy.close()
