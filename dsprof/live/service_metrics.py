"""Request counters read from a service's own Prometheus endpoint (`dsprof watch --service-metrics`).

A service that already exposes a request-latency histogram (vLLM's /metrics, a FastAPI app
instrumented with prometheus-client or OpenTelemetry) needs no dsprof agent for the watch's
request rate and latency: its histogram is read at each refresh and turned into the same
RequestCounters the agent reports, so rates and percentiles come out of the same arithmetic.

Which histogram: `--latency-metric NAME`, else the first of KNOWN_LATENCY present, else the one
histogram whose name ends in a _SUFFIXES entry. Label sets are summed (every route, model and
status). Only second-based histograms are read (Prometheus' convention); the queue length is
vLLM's num_requests_waiting when present.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import defaultdict
from typing import Any

from dsprof.core.errors import UsageError
from dsprof.core.live import HistogramCounts, RequestCounters

KNOWN_LATENCY = (
    "vllm:e2e_request_latency_seconds",  # vLLM
    "http_server_request_duration_seconds",  # OpenTelemetry HTTP semantic conventions
    "http_request_duration_seconds",  # prometheus-fastapi-instrumentator, many others
    "tgi_request_duration",  # text-generation-inference (seconds)
)
_SUFFIXES = ("request_duration_seconds", "request_latency_seconds", "e2e_request_latency_seconds")
KNOWN_WAITING = ("vllm:num_requests_waiting",)
FETCH_TIMEOUT_S = 2.0


def _histograms(families: list[Any]) -> dict[str, Any]:
    return {f.name: f for f in families if f.type == "histogram"}


def pick_latency(families: list[Any], name: str | None) -> Any | None:
    """The latency histogram family (see the module docstring), or None."""
    hists = _histograms(families)
    if name is not None:
        return hists.get(name)
    for known in KNOWN_LATENCY:
        if known in hists:
            return hists[known]
    candidates = [f for n, f in hists.items() if n.endswith(_SUFFIXES)]
    return candidates[0] if len(candidates) == 1 else None


def counters_from_text(text: str, latency_metric: str | None = None) -> RequestCounters | None:
    """RequestCounters from a Prometheus exposition (None when it has no latency histogram)."""
    from prometheus_client.parser import text_string_to_metric_families

    families = list(text_string_to_metric_families(text))
    family = pick_latency(families, latency_metric)
    if family is None:
        return None
    buckets: dict[float, float] = defaultdict(float)
    count = total = 0.0
    for s in family.samples:
        if s.name.endswith("_bucket"):
            buckets[float(s.labels["le"])] += s.value
        elif s.name.endswith("_count"):
            count += s.value
        elif s.name.endswith("_sum"):
            total += s.value
    finite = sorted(b for b in buckets if b != float("inf"))
    waiting = None
    for f in families:
        if f.name in KNOWN_WAITING:
            waiting = int(sum(s.value for s in f.samples))
    return RequestCounters(
        ts_ns=time.time_ns(),
        requests_total=int(count),
        latency=HistogramCounts(
            bounds_s=finite, counts=[int(buckets[b]) for b in finite], count=int(count), sum_s=total
        ),
        waiting=waiting,
    )


def fetch_counters(url: str, latency_metric: str | None = None) -> RequestCounters | None:
    """Read url and return its counters; UsageError naming the URL when it cannot be read."""
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as r:
            text = r.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise UsageError(f"--service-metrics {url}: {getattr(e, 'reason', e)}") from None
    return counters_from_text(text, latency_metric)
