"""Evidence in human units: "DataLoader share 59 %" rather than "dataloader_share 0.593 fraction".

Analyzers record evidence with machine keys and units (dsprof.core.findings.Evidence); every
renderer shows it through `human_evidence`, which names the fact in words, puts the value in a
unit a person reads at a glance (shares as percent, times as ms or s, bytes in MiB/GiB), and
keeps the raw key and the threshold for the folded detail.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from dsprof.core.findings import Evidence

# units whose value is a 0..1 share of something ("of window": of the analysis window)
SHARE_UNITS = ("fraction", "of ")
# words kept as they are written (acronyms and names) when a key is turned into words
_WORDS = {
    "gpu": "GPU",
    "cpu": "CPU",
    "sm": "SM",
    "h2d": "H2D",
    "htod": "HtoD",
    "dtoh": "DtoH",
    "io": "I/O",
    "gemm": "GEMM",
    "gemms": "GEMMs",
    "fp32": "fp32",
    "bf16": "bf16",
    "int8": "int8",
    "rss": "RSS",
    "nccl": "NCCL",
    "cuda": "CUDA",
    "dataloader": "DataLoader",
    "p50": "p50",
    "p99": "p99",
    "slo": "SLO",
}
# a key's trailing unit, said by the formatted value instead
_UNIT_SUFFIX = re.compile(r"_(ms|us|ns|s|bytes|pct|share|fraction|count|w)$")


class EvidenceRow(BaseModel):
    """One evidence entry for people: label and value in words, and the analyzer's raw key for
    the folded detail (the report's view-model and the terminal show these rows)."""

    label: str = ""
    metric: str
    value: str
    threshold: str
    window: str
    source: str


def metric_label(metric: str) -> str:
    """'dataloader_share' -> 'DataLoader share'; 'fp32_gemm_time_ms' -> 'fp32 GEMM time'."""
    key = metric
    suffix = _UNIT_SUFFIX.search(key)
    if suffix and suffix.group(1) not in ("share", "fraction"):
        key = key[: suffix.start()]
        if suffix.group(1) in ("ms", "us", "ns", "s") and not key.endswith(("time", "latency")):
            key += "_time"  # the value says the unit; the label says it is a time
    words = [_WORDS.get(w.lower(), w) for w in re.split(r"[_\s]+", key) if w]
    if not words:
        return metric
    first = words[0]
    if first == first.lower():
        words[0] = first[0].upper() + first[1:]
    return " ".join(words)


def _number(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:.3g}"


def human_value(value: object, unit: str, metric: str = "") -> str:
    """A value in the unit a person reads: shares as percent, times and bytes scaled."""
    from dsprof.report.view_model import format_bytes, format_ns

    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else f"{value}{' ' + unit if unit else ''}"
    v = float(value)
    u = unit.strip()
    if not u and metric.endswith(("_share", "_fraction")) and 0.0 <= v <= 1.0:
        u = "fraction"  # a share recorded without its unit
    if u == "fraction" or u.startswith("fraction "):
        rest = u.removeprefix("fraction").strip()
        return f"{v:.0%}" + (f" {rest}" if rest else "")
    if u.startswith("of "):
        return f"{v:.0%} {u}"
    if u == "ms":
        return format_ns(v * 1e6)
    if u == "us":
        return format_ns(v * 1e3)
    if u == "ns":
        return format_ns(v)
    if u == "s":
        return format_ns(v * 1e9)
    if u in ("bytes", "B"):
        return format_bytes(v)
    if u == "count":
        return _number(v)
    if u.startswith("%"):
        return f"{v:.0f} %{u[1:]}"
    return f"{_number(v)} {u}".strip()


def human_evidence(e: Evidence) -> EvidenceRow:
    """An evidence entry for people (see the module docstring)."""
    threshold = "" if e.threshold is None else human_value(e.threshold, e.unit, e.metric)
    return EvidenceRow(
        label=metric_label(e.metric),
        value=human_value(e.value, e.unit, e.metric),
        threshold=threshold,
        window=e.window,
        source=e.source,
        metric=e.metric,
    )
