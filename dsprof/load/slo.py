"""Service-level objectives: parse `--slo` specs and check them against a measurement.

Specs (the unit decides how a number reads):
    p99<100ms  p50<=20ms  p99.9<1s  max<2s  mean<50ms   latency percentiles (all requests)
    real-time:p99<50ms                                 the same for one priority class
    rps>1000   goodput>900                              achieved / good requests per second
    errors<0.1%                                        non-2xx answers, timeouts and failures
    gpu-util=75..90  cpu<90%                           mean utilisation during the load
    accuracy-drop<1%                                   output drift (dsprof fix's tolerance)
    seeds                                              the source articles' table: p99<100ms,
                                                       rps>1000, gpu-util=75..90, accuracy-drop<1%

Each check carries a 95 % interval: percentiles from order statistics (distribution-free), rates
from the Poisson count, error shares from the Wilson interval, utilisation from the samples'
standard error. The verdict is on the measured value; the interval says how sure it is. A metric
that was not measured (no GPU, no accuracy check) is "not-measured", never a pass or a zero.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from dsprof.core.errors import UsageError
from dsprof.core.load import SloResult, SloStatus

SEEDS: tuple[str, ...] = ("p99<100ms", "rps>1000", "gpu-util=75..90", "accuracy-drop<1%")
Z95 = 1.959963984540054
_SPEC_RE = re.compile(
    r"^\s*(?:(?P<cls>[a-z][a-z0-9_-]*):)?(?P<metric>[a-z][a-z0-9.-]*?)\s*"
    r"(?P<op><=|>=|<|>|=)\s*(?P<value>[0-9.]+(?:\s*\.\.\s*[0-9.]+)?)\s*(?P<unit>ms|us|s|%|/s)?\s*$"
)
_PERCENTILE_RE = re.compile(r"^p(\d+(?:\.\d+)?)$")
_LATENCY_UNITS = {"ms": 1.0, "s": 1000.0, "us": 0.001}
RATE_METRICS = ("rps", "goodput")
SHARE_METRICS = ("errors", "gpu-util", "cpu", "accuracy-drop")


@dataclass(frozen=True)
class Slo:
    """One parsed objective. Latency thresholds are in ms, shares in percent, rates in req/s."""

    spec: str
    metric: str  # p99, max, mean, rps, goodput, errors, gpu-util, cpu, accuracy-drop
    op: str  # <, >, <=, >=, range
    target: float | None = None
    low: float | None = None
    high: float | None = None
    priority: str | None = None

    @property
    def is_latency(self) -> bool:
        return self.metric in ("max", "mean") or bool(_PERCENTILE_RE.match(self.metric))

    @property
    def unit(self) -> str:
        if self.is_latency:
            return "ms"
        return "req/s" if self.metric in RATE_METRICS else "%"

    def holds(self, value: float) -> bool:
        """True when a measured value meets the objective."""
        if self.op == "range":
            assert self.low is not None and self.high is not None
            return self.low <= value <= self.high
        assert self.target is not None
        return {
            "<": value < self.target,
            "<=": value <= self.target,
            ">": value > self.target,
            ">=": value >= self.target,
        }[self.op]


def parse_slos(specs: list[str] | tuple[str, ...]) -> list[Slo]:
    """Parse --slo values (several per option, comma separated, or `seeds`)."""
    out: list[Slo] = []
    for raw in specs:
        for spec in (s.strip() for s in raw.split(",")):
            if not spec:
                continue
            if spec == "seeds":
                out.extend(parse_slos(SEEDS))
                continue
            out.append(parse_slo(spec))
    return out


def parse_slo(spec: str) -> Slo:
    """One spec such as p99<100ms, rps>1000, gpu-util=75..90, errors<0.1%."""
    m = _SPEC_RE.match(spec)
    if m is None:
        raise UsageError(_bad(spec, "the form is METRIC OP VALUE[UNIT], like p99<100ms"))
    metric, op, value, unit = m["metric"], m["op"], m["value"], m["unit"] or ""
    metric = {"throughput": "rps", "error-rate": "errors", "gpu": "gpu-util"}.get(metric, metric)
    pm = _PERCENTILE_RE.match(metric)
    if metric == "p999":
        metric = "p99.9"
    elif pm and not 0 < float(pm.group(1)) < 100:
        raise UsageError(_bad(spec, "a percentile is between p0 and p100"))
    latency = metric in ("max", "mean") or bool(pm) or metric == "p99.9"
    if not latency and metric not in RATE_METRICS + SHARE_METRICS:
        known = "pNN, max, mean, " + ", ".join(RATE_METRICS + SHARE_METRICS)
        raise UsageError(_bad(spec, f"unknown metric {metric!r}; one of {known}"))
    if m["cls"] and not latency:
        raise UsageError(_bad(spec, "only latency objectives take a CLASS: prefix"))
    if latency and unit not in _LATENCY_UNITS:
        raise UsageError(_bad(spec, "a latency needs a unit: ms, s or us"))
    if not latency and unit not in ("", "%", "/s"):
        raise UsageError(_bad(spec, f"{unit!r} is not a unit of {metric}"))
    scale = _LATENCY_UNITS.get(unit, 1.0) if latency else 1.0
    if ".." in value:
        if op != "=":
            raise UsageError(_bad(spec, "a range is written with =, like gpu-util=75..90"))
        lo, hi = (float(v) * scale for v in value.split(".."))
        if lo > hi:
            raise UsageError(_bad(spec, "the range's low end is above its high end"))
        return Slo(spec, metric, "range", low=lo, high=hi, priority=m["cls"])
    if op == "=":
        raise UsageError(_bad(spec, "use <, >, <=, >= or a range A..B"))
    try:
        target = float(value) * scale
    except ValueError:
        raise UsageError(_bad(spec, f"{value!r} is not a number")) from None
    return Slo(spec, metric, op, target=target, priority=m["cls"])


def _bad(spec: str, why: str) -> str:
    return f"--slo {spec!r}: {why} (see docs/load.md)"


@dataclass
class Measurement:
    """What one load step (or a run's steps) measured, for checking SLOs.

    latencies_ns: per priority class (None for unclassed requests), of completed requests only;
    failures count errors and timeouts, which have no latency.
    """

    duration_s: float
    latencies_ns: dict[str | None, np.ndarray] = field(default_factory=dict)
    failures: int = 0
    good: int | None = None
    gpu_util_pct: np.ndarray | None = None
    cpu_pct: np.ndarray | None = None
    accuracy_drop_pct: float | None = None

    def all_latencies(self) -> np.ndarray:
        parts = [v for v in self.latencies_ns.values() if len(v)]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    @property
    def completed(self) -> int:
        return sum(len(v) for v in self.latencies_ns.values())


def latency_budget_ns(slos: list[Slo]) -> dict[str | None, float]:
    """Per class (None: every class), the tightest latency threshold a request must meet to
    count towards goodput. Only `<`/`<=` latency objectives bound a single request."""
    budget: dict[str | None, float] = {}
    for s in slos:
        if s.is_latency and s.op in ("<", "<=") and s.target is not None:
            key = s.priority
            budget[key] = min(budget.get(key, math.inf), s.target * 1e6)
    return budget


def count_good(latencies_ns: dict[str | None, np.ndarray], slos: list[Slo]) -> int | None:
    """Requests that met every latency SLO that applies to them; None without latency SLOs."""
    budget = latency_budget_ns(slos)
    if not budget:
        return None
    good = 0
    for cls, values in latencies_ns.items():
        limit = min(budget.get(None, math.inf), budget.get(cls, math.inf) if cls else math.inf)
        good += int(np.count_nonzero(values <= limit))
    return good


def check_slos(slos: list[Slo], m: Measurement) -> list[SloResult]:
    """Check each objective against the measurement."""
    return [_check(s, m) for s in slos]


def _check(s: Slo, m: Measurement) -> SloResult:
    value, lo, hi, note = _measure(s, m)
    status: SloStatus = "not-measured" if value is None else "pass" if s.holds(value) else "fail"
    return SloResult(
        spec=s.spec,
        metric=(f"{s.priority}:" if s.priority else "") + s.metric,
        op=s.op,  # type: ignore[arg-type]
        target=s.target,
        low=s.low,
        high=s.high,
        unit=s.unit,
        measured=value,
        ci_low=lo,
        ci_high=hi,
        status=status,
        note=note,
    )


def _measure(s: Slo, m: Measurement) -> tuple[float | None, float | None, float | None, str]:
    if s.is_latency:
        if s.priority is not None:
            values = m.latencies_ns.get(s.priority, np.empty(0))
            if not len(values):
                return None, None, None, f"no completed {s.priority} requests"
        else:
            values = m.all_latencies()
            if not len(values):
                return None, None, None, "no completed requests"
        ms = np.sort(values.astype(np.float64)) / 1e6
        if s.metric == "max":
            return float(ms[-1]), None, None, ""
        if s.metric == "mean":
            half = Z95 * float(ms.std(ddof=1)) / math.sqrt(len(ms)) if len(ms) > 1 else 0.0
            return float(ms.mean()), float(ms.mean()) - half, float(ms.mean()) + half, ""
        q = float(s.metric[1:]) / 100.0
        value, lo, hi = percentile_ci(ms, q)
        return value, lo, hi, _tail_note(len(ms), q)
    if s.metric in RATE_METRICS:
        count = m.completed if s.metric == "rps" else m.good
        if count is None:
            return (
                None,
                None,
                None,
                "goodput needs a latency SLO (a request is good when it meets them all)",
            )
        if m.duration_s <= 0:
            return None, None, None, "no measured duration"
        half = Z95 * math.sqrt(count)
        return (
            count / m.duration_s,
            max(count - half, 0) / m.duration_s,
            (count + half) / m.duration_s,
            "",
        )
    if s.metric == "errors":
        total = m.completed + m.failures
        if not total:
            return None, None, None, "no requests"
        lo, hi = wilson(m.failures, total)
        return 100.0 * m.failures / total, 100.0 * lo, 100.0 * hi, ""
    if s.metric in ("gpu-util", "cpu"):
        samples = m.gpu_util_pct if s.metric == "gpu-util" else m.cpu_pct
        if samples is None or not len(samples):
            why = "no GPU utilisation samples (no NVIDIA GPU or NVML here)"
            return None, None, None, why if s.metric == "gpu-util" else "no CPU samples"
        mean = float(np.mean(samples))
        half = (
            Z95 * float(np.std(samples, ddof=1)) / math.sqrt(len(samples))
            if len(samples) > 1
            else 0.0
        )
        return mean, mean - half, mean + half, "interval from the samples' standard error"
    if m.accuracy_drop_pct is None:
        return None, None, None, "accuracy is checked by `dsprof fix --slo`, not under load"
    return m.accuracy_drop_pct, None, None, ""


def percentile_ci(sorted_values: np.ndarray, q: float) -> tuple[float, float | None, float | None]:
    """The q-quantile (nearest rank) and its distribution-free 95 % interval from order statistics.

    The ranks bracketing the quantile come from the binomial(n, q) normal approximation; an end
    that falls outside the sample is None (too few requests to bound it).
    """
    n = len(sorted_values)
    rank = min(max(math.ceil(q * n) - 1, 0), n - 1)
    half = Z95 * math.sqrt(n * q * (1 - q))
    j = math.floor(n * q - half) - 1
    k = math.ceil(n * q + half)
    lo = float(sorted_values[j]) if 0 <= j < n else None
    hi = float(sorted_values[k]) if 0 <= k < n else None
    return float(sorted_values[rank]), lo, hi


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion k/n."""
    p = k / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return max(centre - half, 0.0), min(centre + half, 1.0)


def _tail_note(n: int, q: float) -> str:
    # a percentile needs about 1/(1-q) samples beyond it to be more than the maximum
    if n * (1 - q) < 10:
        return f"only {n} requests: fewer than 10 beyond p{q * 100:g}, so it is close to the max"
    return ""


def overall(results: list[SloResult]) -> str | None:
    """fail when any SLO failed, else pass when any was measured; None without SLOs."""
    if not results:
        return None
    if any(r.status == "fail" for r in results):
        return "fail"
    if any(r.status == "pass" for r in results):
        return "pass"
    return "not-measured"
