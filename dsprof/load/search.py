"""`--find-max-rate`: the highest offered rate that meets every SLO, within ±5 % in <= 8 steps.

From the start rate it doubles while steps pass (halves while they fail) until one rate passes
and one fails; then it bisects between them until the bracket is within BRACKET_PRECISION of the
passing end. A step passes when its measurement is valid and no SLO failed.
"""

from __future__ import annotations

MAX_STEPS = 8
# the bracket [highest pass, lowest fail] is narrowed to 10 % of its low end: the answer is
# within ±5 % of the bracket's midpoint (the precision)
BRACKET_PRECISION = 0.10


class MaxRateSearcher:
    """Propose rates one at a time; record whether each met the SLOs."""

    def __init__(self, start_rate: float, max_steps: int = MAX_STEPS) -> None:
        self.start = start_rate
        self.max_steps = max_steps
        self.tried: list[tuple[float, bool]] = []

    @property
    def best(self) -> float | None:
        """The highest rate that passed."""
        passed = [r for r, ok in self.tried if ok]
        return max(passed) if passed else None

    @property
    def lowest_fail(self) -> float | None:
        best = self.best
        failed = [r for r, ok in self.tried if not ok and (best is None or r > best)]
        return min(failed) if failed else None

    @property
    def precision(self) -> float:
        lo, hi = self.best, self.lowest_fail
        if lo is None or hi is None:
            return float("inf")
        return (hi - lo) / lo

    @property
    def note(self) -> str:
        if not self.tried:
            return ""
        if self.best is None:
            return f"no rate down to {min(r for r, _ in self.tried):.3g} req/s met the SLOs"
        if self.lowest_fail is None:
            return f"every rate up to {self.best:.3g} req/s met the SLOs: the maximum is higher"
        if self.precision > BRACKET_PRECISION:
            return f"stopped after {self.max_steps} steps, bracket still {self.precision:.0%} wide"
        return f"between {self.best:.3g} and {self.lowest_fail:.3g} req/s"

    def record(self, rate: float, passed: bool) -> None:
        self.tried.append((rate, passed))

    def next_rate(self) -> float | None:
        """The next rate to try, or None when the search is done."""
        if len(self.tried) >= self.max_steps:
            return None
        if not self.tried:
            return self.start
        lo, hi = self.best, self.lowest_fail
        if lo is None:
            return min(r for r, _ in self.tried) / 2
        if hi is None:
            return lo * 2
        if (hi - lo) / lo <= BRACKET_PRECISION:
            return None
        return (lo + hi) / 2
