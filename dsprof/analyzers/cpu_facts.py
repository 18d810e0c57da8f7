"""What the CPU analyzers share: which steps ran the model, the GEMM-family ops of its traces with
their rows, dtype and FLOPs, and the severity scale. Whether a run is CPU work and how many cores
it may use are RunFacts (run.facts: dsprof.store.facts), which the recipes read too.

Severity scale of the CPU analyzers (impact = share of the traced iteration time at stake):
    IMPACT_HIGH = 0.30    the seed documents' cut-off ("idle CUDA cores above 30 %"), used for
                          every class whose impact is a share of time
    IMPACT_MEDIUM = 0.10  dsprof's choice: below it a recipe's win is hard to tell from the
                          run-to-run spread of a 5-step trial on a shared CPU (DESIGN.md, Verdict)
    IMPACT_LOW = 0.02     below it nothing is reported
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dsprof.core.findings import Evidence, Finding, Severity

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData
    from dsprof.trace import TraceFrames

IMPACT_HIGH = 0.30
IMPACT_MEDIUM = 0.10
IMPACT_LOW = 0.02

# GEMM-family aten ops; nested calls (linear -> addmm, matmul -> mm) are counted once, outermost
GEMM_OPS = ("aten::linear", "aten::addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::baddbmm")
# GEMMs with fewer rows (left operand, all dims but the last) are batch-starved: on this 2-core
# AVX512 CPU a row cost 4-14x more at 1-4 rows than at 64, and within ~2-3x of it from 8 rows on
# (bench/cpu_gemm_rows.py). small-batch owns them; cpu-fp32-linear counts the rest.
SMALL_BATCH_ROWS = 8
# "Input type" of a float32 tensor in Kineto traces
FP32_TYPE = "float"


def cpu_finding(
    analyzer: str,
    severity: Severity,
    title: str,
    impact: float,
    evidence: list[Evidence],
    recipes: Sequence[str],
    *,
    confidence: float = 1.0,
    detail: str = "",
    confounders: Sequence[str] = (),
) -> Finding:
    """A CPU analyzer's finding: its category is the analyzer's registry name; the impact is
    kept within 0..1 and rounded to 4 places. confounders: faults the run has that the exact
    recipes remove: the severity is capped at low, and the title and detail say so."""
    if confounders:
        severity = "low"
        title += f" (measured with {', '.join(confounders)}: fix that first)"
        detail = (
            "Capped at low: the run has faults the exact recipes remove; re-measure after them."
        )
    return Finding(
        category=analyzer,
        severity=severity,
        title=title,
        impact=round(min(max(impact, 0.0), 1.0), 4),
        confidence=confidence,
        evidence=evidence,
        recipes=list(recipes),
        analyzer=analyzer,
        detail=detail,
    )


def severity_for(impact: float) -> Severity | None:
    """The severity of a share-of-time impact on the CPU analyzers' scale; None below IMPACT_LOW."""
    if impact >= IMPACT_HIGH:
        return "high"
    if impact >= IMPACT_MEDIUM:
        return "medium"
    if impact >= IMPACT_LOW:
        return "low"
    return None


def run_traces(run: RunData) -> list[TraceFrames]:
    """The run's parsed traces ([] without trace files)."""
    return list(run.traces) if run.trace_files else []


# op names a backward pass records: the autograd engine's per-node spans and the backward kernels
BACKWARD_MARKERS = ("autograd::engine::evaluate_function", "_backward")


def ran_backward(traces: list[TraceFrames]) -> bool:
    """True when a trace's window recorded a backward pass: the script trains, so grad mode and
    training mode are its intent, not an inference mistake."""
    for tf in traces:
        names = tf.in_window(tf.cpu_ops)["name"].astype(str).unique()
        if any(m in n for n in names for m in BACKWARD_MARKERS):
            return True
    return False


def model_steps(run: RunData) -> pd.DataFrame:
    """Steps that were module calls (markers carry no autograd/training facts); may be empty."""
    steps = run.steps
    if steps is None or len(steps) == 0:
        return pd.DataFrame()
    if "source" in steps.columns:
        steps = steps[steps["source"] == "module"]
    return steps.reset_index(drop=True)


# classes with exact fixes; while one fires at medium or high, cpu-fp32-linear and small-batch
# cap themselves at low: their numbers are measured under a fault an exact recipe removes, and
# approximate or serving recipes are judged after the exact ones (DESIGN.md, Recipe risk classes)
EXACT_FAULT_CATEGORIES = ("autograd-in-inference", "train-mode-in-inference", "cpu-threads")


def exact_faults(first_pass: Sequence[Finding]) -> list[str]:
    """Categories with exact fixes that the first pass found at medium or high on this run."""
    return [
        f.category
        for f in first_pass
        if f.category in EXACT_FAULT_CATEGORIES and f.severity != "low"
    ]


def outermost(ops: pd.DataFrame) -> pd.DataFrame:
    """Rows not nested inside an earlier row of the same frame on the same thread.

    Vectorised: within each thread, sorted by start, a row is nested when it starts before the
    running maximum of the previous rows' ends.
    """
    if len(ops) == 0:
        return ops
    df = ops.sort_values(["tid", "ts_ns", "dur_ns"], ascending=[True, True, False])
    prev_end = df.groupby("tid", sort=False, observed=True)["end_ns"].transform(
        lambda s: s.cummax().shift(1)
    )
    keep = prev_end.isna() | (df["ts_ns"] >= prev_end)
    return df[keep.to_numpy()]


def _gemm_shape(name: str, dims: Any) -> tuple[int, int, int] | None:
    """(rows, K, N) of one GEMM call from its "Input Dims"; rows = everything but the last dim of
    the left operand (the dimension batching grows)."""
    if not isinstance(dims, list):
        return None
    left, right = (1, 2) if name in ("aten::addmm", "aten::baddbmm") else (0, 1)
    if len(dims) <= right or not dims[left] or not dims[right]:
        return None
    a, b = dims[left], dims[right]
    k = int(a[-1])
    rows = int(prod(a[:-1])) if len(a) > 1 else 1
    # linear's weight is [N, K]; the other ops' right operand is [..., K, N]
    n = int(b[0]) if name == "aten::linear" else (int(b[-1]) if len(b) > 1 else 1)
    return rows, k, n


def innermost_gemm(ops: pd.DataFrame) -> pd.Series:
    """For each outermost op that has GEMM-family ops nested in it, the index of the last of
    them (by start): the op that really ran the GEMM. Indexed by the outermost op's index.

    Under torch.autocast the outer aten::linear is recorded with the float inputs the script
    passed; autocast casts them and calls linear again, whose addmm runs in bf16 (issue 17:
    a bf16 autocast script had been told "fp32 Linear is 18-22 %").
    """
    if len(ops) == 0:
        return pd.Series(dtype="int64")
    df = ops.sort_values(["tid", "ts_ns", "dur_ns"], ascending=[True, True, False])
    prev_end = df.groupby("tid", sort=False, observed=True)["end_ns"].transform(
        lambda s: s.cummax().shift(1)
    )
    outer = (prev_end.isna() | (df["ts_ns"] >= prev_end)).to_numpy()
    owner = df.index.to_numpy()[outer][np.cumsum(outer) - 1]
    inner = pd.Series(df.index.to_numpy()[~outer], index=owner[~outer])
    return inner.groupby(level=0).last()


def gemm_calls(tf: TraceFrames) -> pd.DataFrame:
    """Outermost GEMM-family ops inside the trace's window.

    Columns: name, tid, ts_ns, dur_ns, end_ns, dtype (the "Input type" of the left operand of
    the innermost GEMM-family op the call ran, "" when shapes were not recorded), rows, k, n
    (-1 when unknown) and flops (2*rows*k*n, 0 when unknown).
    """
    ops = tf.cpu_ops
    nested = tf.in_window(ops[ops["name"].isin(GEMM_OPS)])
    ops = outermost(nested)
    cols = ["name", "tid", "ts_ns", "dur_ns", "end_ns"]
    if len(ops) == 0:
        return pd.DataFrame(
            {
                c: pd.Series(dtype=t)
                for c, t in zip(
                    [*cols, "dtype", "rows", "k", "n", "flops"],
                    [
                        object,
                        "int64",
                        "int64",
                        "int64",
                        "int64",
                        object,
                        "int64",
                        "int64",
                        "int64",
                        "float64",
                    ],
                    strict=True,
                )
            }
        )
    out = ops[cols].copy()
    out["name"] = out["name"].astype(str)
    dims = (
        tf.decoded_shapes(ops["input_dims"])
        if "input_dims" in ops
        else pd.Series([None] * len(ops))
    )
    types = (
        tf.decoded_shapes(ops["input_types"])
        if "input_types" in ops
        else pd.Series([None] * len(ops))
    )
    # per unique (name, dims) pair: a model repeats the same few shapes thousands of times
    keys = list(zip(out["name"], dims.map(repr), strict=True))
    cache: dict[tuple[str, str], tuple[int, int, int]] = {}
    shapes = []
    for key, d in zip(keys, dims, strict=True):
        if key not in cache:
            cache[key] = _gemm_shape(key[0], d) or (-1, -1, -1)
        shapes.append(cache[key])
    arr = np.array(shapes, dtype=np.int64).reshape(-1, 3)
    out["rows"], out["k"], out["n"] = arr[:, 0], arr[:, 1], arr[:, 2]
    out["flops"] = np.where(arr[:, 0] > 0, 2.0 * arr[:, 0] * arr[:, 1] * arr[:, 2], 0.0)
    left = np.where(out["name"].isin(["aten::addmm", "aten::baddbmm"]), 1, 0)
    out["dtype"] = [
        t[i] if isinstance(t, list) and len(t) > i else "" for t, i in zip(types, left, strict=True)
    ]
    if "input_types" in nested and len(nested) > len(ops):
        # the dtype the GEMM ran in: that of the innermost GEMM-family op under each call
        inner = innermost_gemm(nested)
        rows = nested.loc[inner.to_numpy()]
        inner_types = tf.decoded_shapes(rows["input_types"])
        inner_left = np.where(rows["name"].astype(str).isin(["aten::addmm", "aten::baddbmm"]), 1, 0)
        ran_in = pd.Series(
            [
                t[i] if isinstance(t, list) and len(t) > i else ""
                for t, i in zip(inner_types, inner_left, strict=True)
            ],
            index=inner.index,
        )
        ran_in = ran_in[ran_in != ""]
        hit = out.index.isin(ran_in.index)
        out.loc[hit, "dtype"] = ran_in.reindex(out.index[hit]).to_numpy()
    return out.reset_index(drop=True)


def window_ns(traces: list[TraceFrames]) -> int:
    """Summed analysis windows of the traces (ProfilerStep spans: iteration time, gaps included)."""
    return int(sum(tf.window_ns for tf in traces))


def window_label(traces: list[TraceFrames]) -> str:
    """Evidence.window text for the traces' analysis windows."""
    return ", ".join(sorted({tf.window_label for tf in traces}))
