"""SLOs on a profiled run's steps (`dsprof run --slo`, `dsprof compare --slo`) and on accuracy
(`dsprof fix --slo accuracy-drop<1%`), checked the same way as under load.

A step plays the part of a request: its duration is the latency, steps per second over the
measured steps (warm-up excluded) the throughput; CPU and GPU utilisation come from the run's
samples in the same window.
"""

from __future__ import annotations

import numpy as np

from dsprof.core.errors import UsageError
from dsprof.core.load import SloResult
from dsprof.load.slo import Measurement, Slo, check_slos, parse_slos

# objectives a step run can be checked on (goodput and errors are request notions)
RUN_METRICS = ("max", "mean", "rps", "gpu-util", "cpu")


def parse_run_slos(specs: list[str] | tuple[str, ...]) -> list[Slo]:
    """--slo for run/compare: latency, rps, cpu, gpu-util (accuracy is dsprof fix's)."""
    slos = parse_slos(specs)
    for s in slos:
        if s.priority is not None or not (s.is_latency or s.metric in RUN_METRICS):
            raise UsageError(
                f"--slo {s.spec!r}: a run is checked on step latency (pNN, max, mean), rps, cpu "
                "and gpu-util; errors, goodput and classes belong to dsprof load, accuracy-drop "
                "to dsprof fix"
            )
    return slos


def run_measurement(run: object) -> Measurement | None:
    """A Measurement from a run's steps (after its warm-up steps) and samples; None without."""
    steps = getattr(run, "steps", None)
    manifest = getattr(run, "manifest", None)
    if steps is None or not len(steps):
        return None
    warmup = 1
    if manifest is not None and isinstance(manifest.options.get("warmup_steps"), int):
        warmup = int(manifest.options["warmup_steps"])
    measured = steps.sort_values("start_ns").iloc[warmup:] if len(steps) > warmup else steps
    start, end = int(measured["start_ns"].min()), int(measured["end_ns"].max())
    m = Measurement(
        duration_s=max(end - start, 1) / 1e9,
        latencies_ns={None: measured["duration_ns"].to_numpy(dtype=np.int64)},
    )
    host, gpu = getattr(run, "host", None), getattr(run, "gpu", None)
    if host is not None and "sys_cpu_pct" in host:
        inside = host[(host["ts_ns"] >= start) & (host["ts_ns"] <= end)]["sys_cpu_pct"].dropna()
        m.cpu_pct = inside.to_numpy(dtype=float) if len(inside) else None
    if gpu is not None and "util_gpu_pct" in gpu:
        inside = gpu[(gpu["ts_ns"] >= start) & (gpu["ts_ns"] <= end)]["util_gpu_pct"].dropna()
        m.gpu_util_pct = inside.to_numpy(dtype=float) if len(inside) else None
    return m


def check_run(run: object, slos: list[Slo]) -> list[SloResult]:
    """Each SLO against a run's steps; not-measured for every SLO when the run has no steps."""
    m = run_measurement(run)
    if m is None:
        m = Measurement(duration_s=0.0)
    return check_slos(slos, m)


def drift_tolerance(specs: list[str] | tuple[str, ...]) -> dict[str, float]:
    """`dsprof fix --slo accuracy-drop<X%` as drift tolerances: cosine and top-1 >= 1 - X/100.

    Top-1 agreement bounds the accuracy drop exactly (a class prediction that did not change
    cannot lose accuracy); for outputs without classes (embeddings), cosine similarity is held
    to the same bound, the project's existing default (0.99 for 1 %).
    """
    out: dict[str, float] = {}
    for s in parse_slos(specs):
        if s.metric != "accuracy-drop" or s.op not in ("<", "<=") or s.target is None:
            raise UsageError(f"--slo {s.spec!r}: dsprof fix takes accuracy-drop<X% only")
        bound = 1.0 - s.target / 100.0
        out["cosine"] = max(out.get("cosine", 0.0), bound)
        out["top1"] = max(out.get("top1", 0.0), bound)
    return out
