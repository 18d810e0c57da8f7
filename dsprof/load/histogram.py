"""Latency histograms: HdrHistogram (the hdrhistogram package), mergeable across workers.

Values are recorded in microseconds from 1 us to one hour with 3 significant digits (0.1 %
error at any magnitude), the HdrHistogram defaults that wrk2 and vegeta report with. A histogram
travels between processes and into load.json as its compressed base64 encoding.
"""

from __future__ import annotations

from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3
# the percentiles load.json and the terminal table report
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p999", 99.9),
)


class LatencyHistogram:
    """One HdrHistogram of latencies; record nanoseconds, read milliseconds."""

    def __init__(self) -> None:
        self.hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    def record_ns(self, latency_ns: int) -> None:
        """Record one latency (clamped into the trackable range)."""
        us = min(max(latency_ns // 1000, LOWEST_US), HIGHEST_US)
        self.hdr.record_value(us)

    def record_many_ns(self, latencies_ns: Iterable[int]) -> None:
        for v in latencies_ns:
            self.record_ns(int(v))

    @property
    def count(self) -> int:
        return int(self.hdr.get_total_count())

    def percentile_ms(self, q: float) -> float | None:
        """The q-th percentile (0..100) in ms; None when empty."""
        if not self.count:
            return None
        return self.hdr.get_value_at_percentile(q) / 1000.0

    def max_ms(self) -> float | None:
        return self.hdr.get_max_value() / 1000.0 if self.count else None

    def mean_ms(self) -> float | None:
        return self.hdr.get_mean_value() / 1000.0 if self.count else None

    def merge(self, other: LatencyHistogram) -> None:
        """Add another histogram's counts to this one."""
        self.hdr.add(other.hdr)

    def encode(self) -> str:
        """Compressed base64 text (the HdrHistogram V2 encoding), for load.json and workers."""
        return bytes(self.hdr.encode()).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> LatencyHistogram:
        h = cls()
        h.hdr.decode_and_add(text.encode("ascii"))
        return h

    def summary(self) -> dict[str, float | int | str | None]:
        """Count, percentiles, max and mean in ms, and the encoding: a LatencySummary's fields."""
        out: dict[str, float | int | str | None] = {"count": self.count}
        for name, q in PERCENTILES:
            out[f"{name}_ms"] = self.percentile_ms(q)
        out["max_ms"] = self.max_ms()
        out["mean_ms"] = self.mean_ms()
        out["hdr"] = self.encode() if self.count else None
        return out
