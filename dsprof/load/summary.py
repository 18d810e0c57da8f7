"""From request rows to a LoadStep: percentiles per class, rates, errors, goodput, lag, SLOs."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from dsprof.core.load import LatencySummary, LoadMode, LoadStep, ScheduleLag
from dsprof.load.generator import MAX_SCHEDULE_LAG_MS
from dsprof.load.histogram import LatencyHistogram
from dsprof.load.slo import Measurement, Slo, check_slos, count_good

UNCLASSED = "all"


def requests_frame(columns: dict[str, Any]) -> pd.DataFrame:
    """requests.parquet's frame from RequestLog.columns(), with nullable integer columns."""
    df = pd.DataFrame(columns)
    for name in df.columns:
        if name.endswith("_ns") and df[name].dtype == object:
            df[name] = df[name].astype("Int64")
    if "latency_ns" in df:
        df["latency_ns"] = df["latency_ns"].astype("Int64")
    return df


def histograms(df: pd.DataFrame) -> dict[str, LatencyHistogram]:
    """One HDR histogram per priority class of the completed requests, and UNCLASSED for all."""
    ok = df[df["latency_ns"].notna()]
    out = {UNCLASSED: LatencyHistogram()}
    out[UNCLASSED].record_many_ns(ok["latency_ns"].to_numpy(dtype=np.int64))
    for cls, part in ok.groupby(ok["priority"].fillna(""), sort=True):
        if cls:
            h = LatencyHistogram()
            h.record_many_ns(part["latency_ns"].to_numpy(dtype=np.int64))
            out[str(cls)] = h
    return out


def measurement(
    df: pd.DataFrame,
    slos: list[Slo],
    start_ns: int,
    end_ns: int,
    host: pd.DataFrame | None = None,
    gpu: pd.DataFrame | None = None,
) -> Measurement:
    """What SLOs are checked against, for the rows of one step and the samples in its window."""
    ok = df[df["latency_ns"].notna()]
    latencies: dict[str | None, np.ndarray] = {}
    for cls, part in ok.groupby(ok["priority"].fillna(""), sort=True):
        latencies[str(cls) or None] = part["latency_ns"].to_numpy(dtype=np.int64)
    m = Measurement(
        duration_s=max(end_ns - start_ns, 1) / 1e9,
        latencies_ns=latencies,
        failures=int(df["latency_ns"].isna().sum()),
    )
    m.good = count_good(latencies, slos)
    m.cpu_pct = _window(host, "sys_cpu_pct", start_ns, end_ns)
    m.gpu_util_pct = _window(gpu, "util_gpu_pct", start_ns, end_ns)
    return m


def _window(df: pd.DataFrame | None, column: str, start_ns: int, end_ns: int) -> np.ndarray | None:
    if df is None or column not in df or "ts_ns" not in df:
        return None
    inside = df[(df["ts_ns"] >= start_ns) & (df["ts_ns"] <= end_ns)][column].dropna()
    return inside.to_numpy(dtype=float) if len(inside) else None


def summarize_step(
    df: pd.DataFrame,
    *,
    index: int,
    mode: LoadMode,
    offered_rate_per_s: float | None,
    concurrency: int | None,
    start_ns: int,
    slos: list[Slo],
    host: pd.DataFrame | None = None,
    gpu: pd.DataFrame | None = None,
) -> LoadStep:
    """The LoadStep of one step's rows (df holds only that step's requests)."""
    done = df["done_ns"].max() if len(df) else start_ns
    end_ns = int(max(done, start_ns + 1))
    m = measurement(df, slos, start_ns, end_ns, host, gpu)
    hists = histograms(df)
    errors = df[df["error"].notna()]
    by_status = Counter(str(e) for e in errors["error"])
    lag = None
    valid, why = True, None
    if mode == "open-loop" and len(df):
        lag_ms = (df["sent_ns"] - df["scheduled_ns"]).to_numpy(dtype=float) / 1e6
        lag = ScheduleLag(
            p99_ms=float(np.percentile(lag_ms, 99)),
            max_ms=float(lag_ms.max()),
            late_share=float(np.mean(lag_ms > MAX_SCHEDULE_LAG_MS)),
        )
        if lag.p99_ms > MAX_SCHEDULE_LAG_MS:
            valid = False
            why = (
                f"the load generator fell behind its schedule: p99 lag {lag.p99_ms:.1f} ms, "
                f"max {lag.max_ms:.1f} ms (allowed {MAX_SCHEDULE_LAG_MS:g} ms at p99); latencies "
                "still count from the schedule, but the offered rate was not sent as planned: "
                "use --workers N, or a machine with spare cores"
            )
    duration_s = m.duration_s
    gpu_mem = None
    if gpu is not None and "mem_used_bytes" in gpu and "ts_ns" in gpu:
        inside = gpu[(gpu["ts_ns"] >= start_ns) & (gpu["ts_ns"] <= end_ns)]["mem_used_bytes"]
        gpu_mem = int(inside.max()) if len(inside.dropna()) else None
    return LoadStep(
        index=index,
        mode=mode,
        offered_rate_per_s=offered_rate_per_s,
        concurrency=concurrency,
        start_ns=start_ns,
        end_ns=end_ns,
        requests=len(df),
        completed=m.completed,
        errors=m.failures,
        timeouts=int(by_status.get("timeout", 0)),
        errors_by_status=dict(by_status),
        achieved_rate_per_s=m.completed / duration_s,
        goodput_per_s=None if m.good is None else m.good / duration_s,
        goodput_share=None if m.good is None or not len(df) else m.good / len(df),
        latency=LatencySummary(**hists[UNCLASSED].summary()),  # type: ignore[arg-type]
        classes={
            c: LatencySummary(**h.summary())  # type: ignore[arg-type]
            for c, h in hists.items()
            if c != UNCLASSED
        },
        schedule_lag=lag,
        valid=valid,
        invalid_reason=why,
        mean_cpu_pct=None if m.cpu_pct is None else float(np.mean(m.cpu_pct)),
        mean_gpu_util_pct=None if m.gpu_util_pct is None else float(np.mean(m.gpu_util_pct)),
        max_gpu_memory_used_bytes=gpu_mem,
        slos=check_slos(slos, m),
    )
