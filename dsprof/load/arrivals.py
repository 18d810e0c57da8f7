"""Arrival schedules for open-loop load: when each request is due, as offsets from the start.

poisson: exponential gaps (independent arrivals, the usual model of many users).
constant: equal gaps (wrk2's fixed rate).
gamma: gamma-distributed gaps with shape = burstiness and the same mean rate, as in vLLM's
    serving benchmark: burstiness 1 is Poisson, below 1 burstier, above 1 more regular.
"""

from __future__ import annotations

import re

import numpy as np

from dsprof.core.errors import UsageError

ARRIVALS: tuple[str, ...] = ("poisson", "constant", "gamma")
_RANGE_RE = re.compile(r"^\s*([0-9.]+)\s*\.\.\s*([0-9.]+)\s*(?::\s*(\d+))?\s*$")
# points in a `--rate A..B` sweep when no :N is given
DEFAULT_SWEEP_POINTS = 5


def schedule_ns(
    rate_per_s: float,
    *,
    arrival: str = "poisson",
    burstiness: float = 1.0,
    duration_s: float | None = None,
    requests: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Due times (int64 ns from the start) of the requests of one step.

    Bounded by `requests` (that many) or `duration_s` (those due before it), whichever is given;
    with both, whichever comes first.
    """
    if rate_per_s <= 0:
        raise UsageError(f"the rate must be above 0 req/s, not {rate_per_s}")
    if arrival not in ARRIVALS:
        raise UsageError(f"--arrival is one of {', '.join(ARRIVALS)}, not {arrival!r}")
    if burstiness <= 0:
        raise UsageError(f"--burstiness must be above 0, not {burstiness}")
    if requests is None and duration_s is None:
        raise UsageError("a load step needs --duration or --requests")
    n = requests if requests is not None else int(rate_per_s * (duration_s or 0) * 1.5) + 16
    rng = np.random.default_rng(seed)
    mean_gap_s = 1.0 / rate_per_s
    if arrival == "constant":
        gaps = np.full(n, mean_gap_s)
    elif arrival == "poisson":
        gaps = rng.exponential(mean_gap_s, n)
    else:
        gaps = rng.gamma(burstiness, mean_gap_s / burstiness, n)
    # the first request goes at the start; each later one a gap after the previous
    due = np.concatenate(([0.0], np.cumsum(gaps[:-1])))
    due_ns = np.rint(due * 1e9).astype(np.int64)
    if duration_s is not None:
        due_ns = due_ns[due_ns < int(duration_s * 1e9)]
    return due_ns


def parse_rates(value: str) -> list[float]:
    """--rate R, or A..B (DEFAULT_SWEEP_POINTS evenly spaced rates) or A..B:N."""
    m = _RANGE_RE.match(value)
    try:
        if m is None:
            rates = [float(value)]
        else:
            a, b = float(m.group(1)), float(m.group(2))
            n = int(m.group(3)) if m.group(3) else DEFAULT_SWEEP_POINTS
            if n < 1 or b < a:
                raise ValueError
            rates = [a] if n == 1 else [a + (b - a) * i / (n - 1) for i in range(n)]
    except ValueError:
        raise UsageError(
            f"--rate wants R, A..B or A..B:N in req/s (like 50 or 10..100:4), not {value!r}"
        ) from None
    if any(r <= 0 for r in rates):
        raise UsageError(f"--rate must be above 0 req/s, not {value!r}")
    return rates
