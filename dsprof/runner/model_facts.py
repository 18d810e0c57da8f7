"""What the child learns about each model at its first call, for `dsprof fix` and its --apply.

At a root module's first call (a tracker first-call hook that runs before any recipe's):
- handles: the names the script's own frames reach the model by, innermost frame first, each
  with the frame's current line: `model`, `extractor.model` (a transformers pipeline),
  `predictor.net` (an object holding it), `encoder[0]`. The codemod writes a change on the
  expression the script can reach at that line (issue 17: int8 had been written on the
  pipeline object itself, which has no Linear layers to quantize).
- autocast: the autocast the script already calls the model under ({"cpu": "bfloat16"}), so
  that recipes that cannot stack under it (int8 dynamic) say so instead of failing.
- decode: the first call came from inside generate(): calls carry a KV cache from one to the
  next (batching must not replay them).

Searching frames costs a few hundred microseconds once per root; it never raises into the
script (a failure leaves the facts empty).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from types import FrameType, ModuleType
from typing import Any

from dsprof.runner.frames import is_user_file

MAX_FRAMES = 8  # user frames searched, innermost first
MAX_HANDLES = 8
MAX_NAMES = 400  # names looked at per frame (a module's globals can be many)
SKIP_NAMES = ("self", "cls")  # a method's own object: not a place the codemod can write to


class ModelFacts:
    """Facts per root module, filled by `first_call` (a tracker first-call hook)."""

    def __init__(self) -> None:
        self.roots: list[dict[str, Any]] = []

    def first_call(self, module: Any) -> None:
        """The tracker's first-call hook: never raises."""
        entry: dict[str, Any] = {"class": type(module).__name__}
        with contextlib.suppress(Exception):
            entry["autocast"] = autocast_state()
        with contextlib.suppress(Exception):
            from dsprof.runner.generate import in_generate

            entry["decode"] = in_generate()
        with contextlib.suppress(Exception):
            entry["handles"] = handles(module, sys._getframe(1))
        self.roots.append(entry)


def autocast_state() -> dict[str, str]:
    """{device: dtype} of the autocast regions active on this thread."""
    import torch

    out = {}
    for device in ("cpu", "cuda"):
        if device == "cuda" and not torch.cuda.is_available():
            continue
        if torch.is_autocast_enabled(device):
            out[device] = str(torch.get_autocast_dtype(device)).replace("torch.", "")
    return out


def handles(module: Any, frame: FrameType | None) -> list[dict[str, Any]]:
    """Expressions in the user's frames that evaluate to `module`, innermost frame first."""
    found: list[dict[str, Any]] = []
    frames = 0
    while frame is not None and frames < MAX_FRAMES and len(found) < MAX_HANDLES:
        code = frame.f_code
        if is_user_file(code.co_filename):
            frames += 1
            for var, expr in _paths_in(frame.f_locals, module):
                found.append(
                    {
                        "file": code.co_filename,
                        "line": frame.f_lineno,
                        "function": code.co_name,
                        "var": var,
                        "expr": expr,
                    }
                )
        frame = frame.f_back
    return found[:MAX_HANDLES]


def _paths_in(names: dict[str, Any], module: Any) -> list[tuple[str, str]]:
    """(variable, expression) pairs reaching `module` from a frame's names: the variable itself,
    an attribute of it, or a child module of it (one level), an attribute's child (two)."""
    import torch

    direct, deeper = [], []
    for i, (name, value) in enumerate(list(names.items())):
        if i >= MAX_NAMES:
            break
        if name.startswith("__") or name in SKIP_NAMES:
            continue
        if value is module:
            direct.append((name, name))
            continue
        if _opaque(value):
            continue
        path = _inside(value, module, name, torch.nn.Module, depth=2)
        if path:
            deeper.append((name, path))
    return direct + deeper


def _inside(obj: Any, module: Any, expr: str, module_cls: Any, depth: int) -> str | None:
    """The expression reaching `module` inside `obj` (attributes, child modules), or None."""
    if depth == 0:
        return None
    if isinstance(obj, module_cls):
        children = list(obj.named_children())
    else:
        attrs = getattr(obj, "__dict__", None)
        if not isinstance(attrs, dict):
            return None
        children = [(k, v) for k, v in attrs.items() if not k.startswith("_")]
    for key, child in children:
        if child is module and _join(expr, key):
            return _join(expr, key)
    for key, child in children:
        if _opaque(child) or not _join(expr, key):
            continue
        found = _inside(child, module, _join(expr, key), module_cls, depth - 1)
        if found:
            return found
    return None


def _opaque(value: Any) -> bool:
    """Values not searched: classes, modules, functions and methods."""
    return isinstance(value, (type, ModuleType)) or inspect.isroutine(value)


def _join(expr: str, key: str) -> str:
    """`expr.key`, `expr[3]` for a numbered child (nn.Sequential), '' for any other key."""
    if key.isidentifier():
        return f"{expr}.{key}"
    return f"{expr}[{int(key)}]" if key.isdigit() else ""
