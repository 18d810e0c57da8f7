"""cpu-fp32-linear: float32 Linear / matmul time on a CPU-only run that int8 or bf16 would cut.

Detects
    A CPU-only run whose traced iterations spend a large share of their time in fp32 GEMM-family
    ops (aten::linear, addmm, mm, bmm, matmul, baddbmm), the work int8 dynamic quantization
    (quantized::linear_dynamic) and bf16 autocast (AMX / AVX512-BF16 GEMMs) make cheaper.
Signal
    Outermost GEMM-family cpu_ops of the trace inside its ProfilerStep window whose left operand's
    "Input type" is "float" (record_shapes), with at least SMALL_BATCH_ROWS rows and
    MIN_GEMM_FLOPS (2e6) FLOPs per call (smaller ones are dispatch-bound, quantizing them gains
    nothing; launch-overhead covers them); their summed
    duration over the window is the fp32 GEMM share. GEMMs with fewer rows are the small-batch
    analyzer's: batching them is the first fix.
Thresholds
    impact = share * (1 - 1 / INT8_SPEEDUP): the time int8 would save if only the GEMMs sped up.
    INT8_SPEEDUP = 2.3 (DESIGN.md "Facts measured": BERT-base seq 128 b1 fp32 109 ms -> int8
    dynamic 47 ms on these 2-core AMX machines; a whole-model number, so the GEMM-only gain is at
    least this: the estimate is conservative). Severity from impact on the CPU scale of
    dsprof.analyzers.cpu_facts (IMPACT_MEDIUM 0.10, IMPACT_HIGH 0.30), but low while the share is
    under MEDIUM_SHARE = 0.5: int8 and bf16 are approximate recipes that can fail an accuracy
    guard (DESIGN.md: int8 dynamic gave the trained MiniLM a cosine of 0.95), so dsprof asks for
    them only when fp32 GEMMs are most of the iteration.
    Confounders: when autograd-in-inference, train-mode-in-inference or cpu-threads fire at
    medium or high on the same run, the GEMM share is measured under a fault an exact recipe
    removes; the finding is then capped at low and names it (approximate recipes are judged
    after the exact ones, DESIGN.md Recipe).
Evidence
    fp32 GEMM share of the window, fp32 GEMM time, calls, achieved GFLOP/s (from shapes), the
    largest op by time with its shape, and the estimated saving.
False positives
    Models already quantized (quantized::* ops are not GEMM-family names) or autocast to bf16
    ("Input type" c10::BFloat16) are not counted. GPU runs never fire: the CPU-side time of a
    CUDA matmul is launch time, not math. Without record_shapes the dtype is unknown; the
    run's parameter dtypes from child.json decide then, and confidence drops.
References
    PyTorch dynamic quantization tutorial (torch.ao.quantization.quantize_dynamic on nn.Linear);
    Intel Extension for PyTorch / PyTorch CPU autocast docs (bf16 on AMX).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import pandas as pd

from dsprof.analyzers import cpu_facts
from dsprof.analyzers.cpu_facts import FP32_TYPE, SMALL_BATCH_ROWS, severity_for
from dsprof.core.findings import Evidence, Finding

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData

INT8_SPEEDUP = 2.3
# smaller GEMMs are dispatch-bound: about 20 us at the ~100 GFLOP/s this CPU reaches on mid-size
# GEMMs (bench/cpu_gemm_rows.py), where eager dispatch and int8's per-call activation
# quantization (a few us each) stop dominating the call
MIN_GEMM_FLOPS = 2e6
# below this fp32 GEMM share there is nothing worth quantizing
MIN_SHARE = 0.05
# int8 and bf16 are approximate: ask for them (medium or high) only when fp32 GEMMs are most of it
MEDIUM_SHARE = 0.5
RECIPES = ["int8-dynamic", "bf16", "compile"]


class CpuFp32LinearAnalyzer:
    """fp32 GEMM time on CPU-only runs (see the module docstring)."""

    name: ClassVar[str] = "cpu-fp32-linear"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("trace",)

    def analyze(self, run: RunData, first_pass: Sequence[Finding] = ()) -> list[Finding]:
        """One finding when fp32 GEMMs hold a large share of the traced iterations (low while
        the first pass found an exact fault)."""
        traces = cpu_facts.run_traces(run)
        if not traces or run.facts.uses_accelerator:  # a GPU or MTIA ran the work
            return []
        calls = pd.concat([cpu_facts.gemm_calls(tf) for tf in traces], ignore_index=True)
        if len(calls) == 0:
            return []
        confidence = 1.0
        known = calls["dtype"] != ""
        if known.any():
            fp32 = calls[
                (calls["dtype"] == FP32_TYPE)
                & (calls["rows"] >= SMALL_BATCH_ROWS)
                & (calls["flops"] >= MIN_GEMM_FLOPS)
            ]
        elif _params_fp32(run):
            # no record_shapes: trust the parameter dtypes, and say so through confidence
            fp32, confidence = calls, 0.6
        else:
            return []
        window = cpu_facts.window_ns(traces)
        fp32_ns = int(fp32["dur_ns"].sum())
        share = min(fp32_ns / window, 1.0)
        if share < MIN_SHARE:
            return []
        impact = share * (1.0 - 1.0 / INT8_SPEEDUP)
        severity = severity_for(impact)
        if severity is None:
            return []
        if share < MEDIUM_SHARE:
            severity = "low"
        label = cpu_facts.window_label(traces)
        evidence = [
            Evidence(
                metric="fp32_gemm_share",
                value=round(share, 4),
                unit="of window",
                threshold=MIN_SHARE,
                window=label,
                source="trace cpu_ops",
            ),
            Evidence(
                metric="fp32_gemm_time",
                value=round(fp32_ns / 1e6, 3),
                unit="ms",
                window=label,
                source="trace cpu_ops",
            ),
            Evidence(
                metric="fp32_gemm_calls", value=len(fp32), window=label, source="trace cpu_ops"
            ),
            Evidence(
                metric="estimated_saving",
                value=round(impact, 4),
                unit="of window",
                threshold=cpu_facts.IMPACT_MEDIUM,
                source=f"share * (1 - 1/{INT8_SPEEDUP}) (int8 dynamic, DESIGN.md facts)",
            ),
        ]
        flops = float(fp32["flops"].sum())
        if flops > 0 and fp32_ns > 0:
            evidence.append(
                Evidence(
                    metric="fp32_gemm_gflops",
                    value=round(flops / fp32_ns, 2),
                    unit="GFLOP/s",
                    window=label,
                    source="shapes in trace",
                )
            )
        top = fp32.groupby(["name", "rows", "k", "n"], observed=True)["dur_ns"].sum().idxmax()
        evidence.append(
            Evidence(
                metric="largest_gemm",
                value=f"{top[0]} [{top[1]}x{top[2]}] x [{top[2]}x{top[3]}]",
                window=label,
                source="trace cpu_ops",
            )
        )
        title = (
            f"fp32 Linear/matmul is {share:.0%} of CPU iteration time; int8 dynamic "
            f"quantization or bf16 could save ~{impact:.0%}"
        )
        return [
            cpu_facts.cpu_finding(
                self.name,
                severity,
                title,
                impact,
                evidence,
                RECIPES,
                confidence=confidence,
                confounders=cpu_facts.exact_faults(first_pass),
            )
        ]


def _params_fp32(run: RunData) -> bool:
    """True when child.json says the root modules hold float32 parameters."""
    return bool(set(run.facts.param_dtypes) & {"torch.float32", "float32"})
