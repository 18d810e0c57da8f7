"""The child side of a trial: install the named recipes before the user's script starts.

Called by dsprof.runner.child as `install(names, options, tracker)`; the returned dict is stored
as child.json["recipes"] (the child writes it at the end, so hooks that run later add to it).
`options` maps a recipe name to its options. Recipes are installed in their `order`; a recipe
that raises while installing is recorded and re-raised so the trial fails naming it.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
from typing import Any

from dsprof.recipes.base import Undo
from dsprof.recipes.registry import get_recipe

_UNDO: list[Undo] = []


def install(names: list[str], options: dict[str, Any], tracker: Any) -> dict[str, Any]:
    """Install recipes on the tracker and torch; returns {name: status} for child.json."""
    recipes = sorted((get_recipe(n) for n in names), key=lambda r: r.order)
    report: dict[str, Any] = {}
    for recipe in recipes:
        status: dict[str, Any] = {"status": "installed"}
        report[recipe.name] = status
        before = len(tracker.first_call_hooks)
        try:
            _UNDO.append(recipe.install(tracker, dict(options.get(recipe.name) or {}), status))
            tracker.first_call_hooks[before:] = [
                _as_nested_call(tracker, h, recipe.name, status)
                for h in tracker.first_call_hooks[before:]
            ]
        except Exception as e:
            status.update(status="failed", error=f"{type(e).__name__}: {e}")
            raise RuntimeError(f"recipe {recipe.name} failed to install: {e}") from e
    if _UNDO:
        atexit.register(uninstall)
    return report


def _as_nested_call(
    tracker: Any, hook: Callable[[Any], None], name: str, status: dict[str, Any]
) -> Callable[[Any], None]:
    """Wrap a first-call hook so that, when it raises, its recipe is marked failed and named.

    (The tracker runs first-call hooks inside a step, so the modules they call, such as
    quantize_dynamic's observers or a batch-size sweep's model calls, are not steps.)
    """

    def nested(module: Any) -> None:
        try:
            hook(module)
        except Exception as e:
            status.update(status="failed", error=f"{type(e).__name__}: {e}")
            raise RuntimeError(f"recipe {name} failed at the model's first call: {e}") from e

    return nested


def uninstall() -> None:
    """Undo the global changes of the installed recipes, last first."""
    while _UNDO:
        _UNDO.pop()()
