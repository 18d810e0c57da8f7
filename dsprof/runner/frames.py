"""Finding the user's own frame on the stack (not torch's, not dsprof's, not the stdlib's)."""

from __future__ import annotations

import os
import sysconfig
from types import FrameType

_SKIP_PREFIXES = tuple(
    {
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,  # dsprof/
        sysconfig.get_paths()["stdlib"] + os.sep,
        sysconfig.get_paths()["purelib"] + os.sep,
        sysconfig.get_paths()["platlib"] + os.sep,
    }
)


def is_user_file(filename: str) -> bool:
    """True for code the user wrote: not a library, not dsprof, not a frozen module."""
    if filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    return not path.startswith(_SKIP_PREFIXES) and "site-packages" not in path


def user_frame(frame: FrameType | None) -> tuple[str, int, str] | None:
    """(file, line, function) of the innermost user frame at or above `frame`."""
    while frame is not None:
        code = frame.f_code
        if is_user_file(code.co_filename):
            return os.path.abspath(code.co_filename), frame.f_lineno, code.co_name
        frame = frame.f_back
    return None
