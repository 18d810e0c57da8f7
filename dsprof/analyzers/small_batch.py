"""small-batch: the model is called with a batch of one (or a few) rows, so its GEMMs run as
matrix-vector products at a fraction of the machine's throughput: throughput left on the table.

Detects
    A CPU-only run whose traced iterations spend their time in GEMM-family ops (aten::linear,
    addmm, mm, bmm, matmul, baddbmm) with fewer than SMALL_BATCH_ROWS rows over weights of at
    least MIN_WEIGHT_BYTES, over several model calls that could have been one batched call: each
    call streams the whole weight matrix from memory to use it for one row.
Signal
    Outermost GEMM-family cpu_ops in the trace window with their rows (the left operand's dims but
    the last: batch x tokens), from "Input Dims" (record_shapes); the batch dimension of the root
    module's first tensor input (child.json root_inputs) when recorded; the number of module steps.
Thresholds
    SMALL_BATCH_ROWS = 16 (dsprof.analyzers.cpu_facts): per-row GEMM cost on this 2-core AVX512
    CPU fell 3.5-7.5x from 1 to 64 rows and flattened from ~16 rows on (bench/cpu_gemm_rows.py).
    BATCHING_ROW_GAIN = 4: the per-row speed-up batching brings, the low end of that measurement.
    MIN_WEIGHT_BYTES = 1 MiB: one core's L2 here (lscpu); smaller weights stay cached between
    calls, so those GEMMs are bound by dispatch (launch-overhead), not by the missing rows.
    impact = small-row GEMM share of the window * (1 - 1 / BATCHING_ROW_GAIN); severity on the CPU
    scale (IMPACT_MEDIUM 0.10, IMPACT_HIGH 0.30). MIN_STEPS = 2: one call cannot be batched.
    A recorded root-input batch larger than SMALL_BATCH_ROWS rules the finding out.
Evidence
    small-row GEMM share and time, their rows, achieved GFLOP/s against the run's own larger
    GEMMs when it has any, the input batch, steps, and the estimated saving.
False positives
    Transformers at batch 1 over a sequence run GEMMs with seq-len rows (not small): no finding,
    and rightly, since batching gains little on a CPU there. Latency-bound services may not be
    able to wait for a batch: the batching recipe's trial measures it.
References
    NVIDIA / Intel GEMM efficiency guides (arithmetic intensity grows with the M dimension);
    Triton / TorchServe dynamic batching docs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from dsprof.analyzers import cpu_facts
from dsprof.analyzers.cpu_facts import SMALL_BATCH_ROWS
from dsprof.core.findings import Evidence, Finding

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData

BATCHING_ROW_GAIN = 4.0
# weights smaller than one core's L2 (1 MiB on this AMD EPYC, lscpu) stay in cache between
# calls: such GEMMs are dispatch-bound (launch-overhead's domain), not starved of rows
MIN_WEIGHT_BYTES = 1 << 20
MIN_STEPS = 2
RECIPES = ["batching"]


class SmallBatchAnalyzer:
    """Batch-starved GEMMs on CPU runs (see the module docstring)."""

    name: ClassVar[str] = "small-batch"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("trace",)

    def analyze(self, run: RunData) -> list[Finding]:
        """One finding when small-row GEMMs hold a large share of the traced iterations."""
        traces = cpu_facts.run_traces(run)
        if not traces or not cpu_facts.is_cpu_only(run):
            return []
        batch = _input_batch(run)
        if batch is not None and batch > SMALL_BATCH_ROWS:
            return []
        steps = cpu_facts.model_steps(run)
        n_steps = len(steps) if len(steps) else sum(len(tf.steps) for tf in traces)
        if n_steps < MIN_STEPS:
            return []
        calls = pd.concat([cpu_facts.gemm_calls(tf) for tf in traces], ignore_index=True)
        weight_bytes = calls["k"] * calls["n"] * 4
        small = calls[
            (calls["rows"] > 0)
            & (calls["rows"] < SMALL_BATCH_ROWS)
            & (weight_bytes >= MIN_WEIGHT_BYTES)
        ]
        if len(small) == 0:
            return []
        window = cpu_facts.window_ns(traces)
        small_ns = int(small["dur_ns"].sum())
        share = min(small_ns / window, 1.0)
        impact = share * (1.0 - 1.0 / BATCHING_ROW_GAIN)
        severity = cpu_facts.severity_for(impact)
        if severity is None:
            return []
        label = cpu_facts.window_label(traces)
        rows = int(small["rows"].median())
        evidence = [
            Evidence(
                metric="small_row_gemm_share",
                value=round(share, 4),
                unit="of window",
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
            Evidence(metric="model_steps", value=n_steps, threshold=MIN_STEPS, source="steps"),
            Evidence(
                metric="estimated_saving",
                value=round(impact, 4),
                unit="of window",
                threshold=cpu_facts.IMPACT_MEDIUM,
                source=f"share * (1 - 1/{BATCHING_ROW_GAIN:g}) (bench/cpu_gemm_rows.py)",
            ),
        ]
        if batch is not None:
            evidence.append(
                Evidence(metric="input_batch", value=batch, source="child.json root_inputs")
            )
        evidence += _efficiency(small, calls[calls["rows"] >= SMALL_BATCH_ROWS], label)
        title = (
            f"GEMMs run with {rows} row{'s' if rows > 1 else ''} (batch of {batch if batch else rows})"
            f" for {share:.0%} of the time over {n_steps} calls; batching could save ~{impact:.0%}"
        )
        return [
            Finding(
                category="small-batch",
                severity=severity,
                title=title,
                impact=round(impact, 4),
                confidence=1.0 if batch is not None else 0.8,
                evidence=evidence,
                recipes=list(RECIPES),
                analyzer=self.name,
            )
        ]


def _input_batch(run: RunData) -> int | None:
    """Leading dimension of the root module's first tensor input, when child.json records it."""
    roots: Any = run.child_info.get("root_inputs") or {}
    for inputs in roots.values() if isinstance(roots, dict) else []:
        for tensor in inputs:
            shape = tensor.get("shape") if isinstance(tensor, dict) else None
            if isinstance(shape, list) and shape:
                return int(shape[0])
    return None


def _efficiency(small: pd.DataFrame, large: pd.DataFrame, label: str) -> list[Evidence]:
    """Achieved GFLOP/s of the small-row GEMMs, next to the run's larger GEMMs when present."""
    out = []
    if small["flops"].sum() > 0:
        gflops = small["flops"].sum() / small["dur_ns"].sum()
        out.append(
            Evidence(
                metric="small_row_gemm_gflops",
                value=round(float(gflops), 2),
                unit="GFLOP/s",
                window=label,
                source="shapes in trace",
            )
        )
        if len(large) and large["flops"].sum() > 0:
            out.append(
                Evidence(
                    metric="large_row_gemm_gflops",
                    value=round(float(large["flops"].sum() / large["dur_ns"].sum()), 2),
                    unit="GFLOP/s",
                    window=label,
                    source="shapes in trace",
                )
            )
    return out
