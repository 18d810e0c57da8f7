"""small-batch: the model is called with a batch of one (or a few) rows, so its GEMMs run as
matrix-vector products and every call pays the fixed costs (dispatch, streaming the weights) for
one sample: throughput left on the table.

Detects
    A CPU-only run whose model calls are batch-starved: most of their GEMM time (aten::linear,
    addmm, mm, bmm, matmul, baddbmm) is spent on calls with fewer than SMALL_BATCH_ROWS rows over
    weights of at least MIN_WEIGHT_ELEMENTS, repeated over several calls that one batched call
    could replace.
Signal
    Outermost GEMM-family cpu_ops in the trace window with their rows (the left operand's dims
    but the last: batch x tokens) and weight size, from "Input Dims" (record_shapes); the time
    model calls take within the loop (steps.parquet: median call over median start-to-start
    interval, robust to the profiler's and output capture's overhead); the batch dimension of
    the root module's first tensor input (child.json root_inputs) when recorded.
Thresholds
    SMALL_BATCH_ROWS = 8 (dsprof.analyzers.cpu_facts): a row costs 4-14x more at 1-4 rows than at
    64, and within 2-3x from 8 rows on (bench/cpu_gemm_rows.py, 2-core AMD EPYC, torch 2.13).
    MIN_WEIGHT_ELEMENTS = 65536: a one-row GEMM over a 256x256 weight is 131 kFLOP, about 5 us at
    the ~26 GFLOP/s measured for one-row GEMMs here, the same as one eager dispatch; smaller
    GEMMs are dispatch-bound, which is launch-overhead's class, not this one.
    STARVED_SHARE = 0.5: at least half the GEMM time is in such calls (the model, not a side op).
    BATCHING_ROW_GAIN = 4: the per-row speed-up batching brings, the low end of the measurement.
    impact = model-step share of the window * (1 - 1 / BATCHING_ROW_GAIN): every fixed per-call
    cost of the model call is shared by the batch. Severity on the CPU scale (IMPACT_MEDIUM 0.10,
    IMPACT_HIGH 0.30). MIN_STEPS = 2: one call cannot be batched. A recorded root-input batch of
    SMALL_BATCH_ROWS or more rules the finding out. Capped at low, naming the fault, while an
    exact fault (autograd-in-inference, train-mode-in-inference, cpu-threads) fires at medium or
    high: batching is judged after the exact recipes (cpu_facts.exact_faults).
Evidence
    starved GEMM share, their median rows, achieved GFLOP/s (and the run's larger GEMMs' when it
    has any), model-step share, steps, the input batch, the estimated saving, and the process's
    CPU use against the usable cores (host.parquet, evidence only: OpenMP threads spin while they
    wait, so CPU use overstates useful work).
False positives
    Transformers at batch 1 over a sequence run GEMMs with seq-len rows (not starved): no
    finding, and rightly, since batching gains little on a CPU there. Latency-bound services may
    not be able to wait for a batch: the batching recipe's trial measures it.
References
    Intel oneDNN / MKL GEMM performance notes (efficiency grows with the M dimension);
    TorchServe and Triton Inference Server dynamic batching docs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import pandas as pd

from dsprof.analyzers import cpu_facts
from dsprof.analyzers.cpu_facts import SMALL_BATCH_ROWS
from dsprof.core.findings import Evidence, Finding

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData

MIN_WEIGHT_ELEMENTS = 65536
STARVED_SHARE = 0.5
BATCHING_ROW_GAIN = 4.0
MIN_STEPS = 2
RECIPES = ["batching"]


class SmallBatchAnalyzer:
    """Batch-starved model calls on CPU runs (see the module docstring)."""

    name: ClassVar[str] = "small-batch"
    version: ClassVar[int] = 2
    requires: ClassVar[tuple[str, ...]] = ("trace",)

    def analyze(self, run: RunData, first_pass: Sequence[Finding] = ()) -> list[Finding]:
        """One finding when the model's GEMMs run on a batch too small to use the CPU (low
        while the first pass found an exact fault)."""
        traces = cpu_facts.run_traces(run)
        if not traces or run.facts.uses_accelerator:  # a GPU or MTIA ran the work
            return []
        batch = _input_batch(run)
        if batch is not None and batch >= SMALL_BATCH_ROWS:
            return []
        steps = cpu_facts.model_steps(run)
        n_steps = len(steps) if len(steps) else sum(len(tf.steps) for tf in traces)
        if n_steps < MIN_STEPS:
            return []
        calls = pd.concat([cpu_facts.gemm_calls(tf) for tf in traces], ignore_index=True)
        starved = calls[
            (calls["rows"] > 0)
            & (calls["rows"] < SMALL_BATCH_ROWS)
            & (calls["k"] * calls["n"] >= MIN_WEIGHT_ELEMENTS)
        ]
        gemm_ns = int(calls["dur_ns"].sum())
        if len(starved) == 0 or starved["dur_ns"].sum() < STARVED_SHARE * gemm_ns:
            return []
        window = cpu_facts.window_ns(traces)
        model_share, share_source = _model_share(steps, window, int(starved["dur_ns"].sum()))
        impact = model_share * (1.0 - 1.0 / BATCHING_ROW_GAIN)
        severity = cpu_facts.severity_for(impact)
        if severity is None:
            return []
        label = cpu_facts.window_label(traces)
        rows = int(starved["rows"].median())
        evidence = [
            Evidence(
                metric="starved_gemm_share",
                value=round(float(starved["dur_ns"].sum()) / gemm_ns, 4),
                unit="of GEMM time",
                threshold=STARVED_SHARE,
                window=label,
                source="trace cpu_ops",
            ),
            Evidence(
                metric="gemm_rows",
                value=rows,
                threshold=SMALL_BATCH_ROWS,
                window=label,
                source="trace Input Dims",
            ),
            Evidence(
                metric="model_share",
                value=round(model_share, 4),
                unit="of window",
                window=label,
                source=share_source,
            ),
            Evidence(metric="model_steps", value=n_steps, threshold=MIN_STEPS, source="steps"),
            Evidence(
                metric="estimated_saving",
                value=round(impact, 4),
                unit="of window",
                threshold=cpu_facts.IMPACT_MEDIUM,
                source=f"model_share * (1 - 1/{BATCHING_ROW_GAIN:g}) (bench/cpu_gemm_rows.py)",
            ),
        ]
        if batch is not None:
            evidence.append(
                Evidence(metric="input_batch", value=batch, source="child.json root_inputs")
            )
        evidence += _efficiency(starved, calls[calls["rows"] >= SMALL_BATCH_ROWS], label)
        evidence += _utilisation(run)
        title = (
            f"the model runs on {rows} row{'s' if rows > 1 else ''} per call over {n_steps} calls"
            f" ({model_share:.0%} of the time); batching requests could save ~{impact:.0%}"
        )
        return [
            cpu_facts.cpu_finding(
                self.name,
                severity,
                title,
                impact,
                evidence,
                RECIPES,
                confidence=1.0 if batch is not None else 0.8,
                confounders=cpu_facts.exact_faults(first_pass),
            )
        ]


def _model_share(steps: pd.DataFrame, window_ns: int, starved_ns: int) -> tuple[float, str]:
    """Share of the loop's time inside model calls.

    From steps.parquet: median call time over the median start-to-start interval of the module
    steps (all of them, so the traced and output-capturing steps' overhead does not skew it);
    without steps, the starved GEMMs' share of the trace window.
    """
    if len(steps) >= MIN_STEPS:
        ordered = steps.sort_values("start_ns")
        interval = float(ordered["start_ns"].diff().median())
        if interval > 0:
            share = float(ordered["duration_ns"].median()) / interval
            return min(share, 1.0), "steps.parquet median call / median interval"
    return min(starved_ns / window_ns, 1.0), "trace cpu_ops (starved GEMMs only)"


def _utilisation(run: RunData) -> list[Evidence]:
    """The process tree's CPU use over the model steps, against the cores it could use."""
    host, steps = run.host, cpu_facts.model_steps(run)
    if host is None or "proc_cpu_pct" not in host or len(steps) == 0:
        return []
    inside = host[
        (host["ts_ns"] >= steps["start_ns"].min()) & (host["ts_ns"] <= steps["end_ns"].max())
    ]
    usable = run.facts.usable_cores
    if len(inside) == 0 or usable is None:
        return []
    used = float(inside["proc_cpu_pct"].mean()) / usable
    return [
        Evidence(
            metric="cpu_utilisation",
            value=round(used, 1),
            unit="% of usable cores",
            source="host.parquet proc_cpu_pct",
        )
    ]


def _input_batch(run: RunData) -> int | None:
    """Leading dimension of the root module's first tensor input, when child.json records it."""
    for inputs in run.child.root_inputs.values():
        for tensor in inputs:
            if tensor.shape:
                return int(tensor.shape[0])
    return None


def _efficiency(small: pd.DataFrame, large: pd.DataFrame, label: str) -> list[Evidence]:
    """Achieved GFLOP/s of the starved GEMMs, next to the run's larger GEMMs when present."""
    out = []
    for metric, frame in (("starved_gemm_gflops", small), ("large_gemm_gflops", large)):
        if len(frame) and frame["flops"].sum() > 0 and frame["dur_ns"].sum() > 0:
            gflops = float(frame["flops"].sum() / frame["dur_ns"].sum())
            out.append(
                Evidence(
                    metric=metric,
                    value=round(gflops, 2),
                    unit="GFLOP/s",
                    window=label,
                    source="shapes in trace",
                )
            )
    return out
