"""Durations typed on the command line: 60, 60s, 500ms, 2m, 1h."""

from __future__ import annotations

from dsprof.core.errors import UsageError

_UNITS = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))


def parse_duration(value: str, option: str) -> float:
    """Seconds in value; UsageError naming the option when it is not a positive duration."""
    text = value.strip().lower()
    scale = 1.0
    for suffix, factor in _UNITS:
        if text.endswith(suffix):  # "ms" is tried before "s"
            text, scale = text[: -len(suffix)], factor
            break
    try:
        seconds = float(text) * scale
    except ValueError:
        raise UsageError(
            f"{option} wants a duration like 60s, 500ms or 2m, not {value!r}"
        ) from None
    if not seconds > 0:
        raise UsageError(f"{option} must be more than 0, not {value!r}")
    return seconds
