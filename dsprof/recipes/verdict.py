"""Verdicts: is a trial faster than the baseline beyond the noise, and are its outputs still right?

Speed: the ratio of iteration-time medians (baseline / trial; an iteration is timed from one
model call's start to the next, so time spent between calls counts: dsprof.core.steps) with a
percentile-bootstrap 95 % interval, resampling each run's measured steps independently. Warm-up steps and the leading compile steps
are excluded first, by dsprof.core.steps (the rules every step figure follows). Accepted only when the interval's lower end is at least 1 + MIN_GAIN; an
interval reaching below that but not wholly below 1 is "no measurable change", never a win.

Outputs: the trial's captured outputs against the baseline's, tensor by tensor (same step, same
flattened name): max abs diff, relative L2 error, mean per-row cosine similarity over the last
dimension, top-1 agreement on logits-shaped tensors, fp32 allclose.

Thresholds (module constants):
    MIN_GAIN = 0.03            issue 4: a real win is at least 3 %
    CONFIDENCE = 0.95          issue 4 / DESIGN.md: bootstrap 95 % interval
    BOOTSTRAP_RESAMPLES = 2000 Efron & Tibshirani (1993) recommend >= 1000 for percentile intervals
    MIN_STEPS = 5              fewer measured steps give no usable interval (dsprof.core.steps)
    COMPILE_STEP_FACTOR = 3.0  a leading step over 3x the median of the rest is warm-up/compile
                               (dsprof.core.steps: torch.utils.benchmark likewise discards
                               warm-up; the factor is dsprof's)
    DEFAULT_COSINE = 0.99, DEFAULT_TOP1 = 0.99   issue 4's defaults for approximate recipes
    ALLCLOSE_RTOL = 1e-4, ALLCLOSE_ATOL = 1e-5   fp32 allclose loosened from torch's 1e-5/1e-8 to
                               admit reordered reductions (another thread count sums differently)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsprof.core.fix import Drift, Outcome, RiskClass, Verdict
from dsprof.core.manifest import StepSummary
from dsprof.core.steps import MIN_STEPS, measured_iterations, median_ratio_interval, stats_of
from dsprof.store.layout import output_steps

if TYPE_CHECKING:
    import pandas as pd

MIN_GAIN = 0.03
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
DEFAULT_COSINE = 0.99
DEFAULT_TOP1 = 0.99
ALLCLOSE_RTOL = 1e-4
ALLCLOSE_ATOL = 1e-5
# output names that hold embeddings or hidden states, where an argmax means nothing
NOT_LOGITS = ("hidden", "embedding", "pooler", "attention", "past_key_values")


@dataclass(frozen=True)
class Speed:
    """Bootstrap result: the median ratio and its interval."""

    speedup: float
    lo: float
    hi: float
    baseline_steps: int
    trial_steps: int


def measured_durations(
    steps: pd.DataFrame | None, warmup: int = 1, module: str | None = None
) -> tuple[np.ndarray, int]:
    """Iteration durations (ns) with warm-up, leading compile steps and (when enough untraced
    ones remain) traced iterations dropped; and how many were dropped.

    Iterations are timed start to start (dsprof.core.steps.iterations), the one definition of
    a step every figure uses. `module`: the model whose calls mark iterations (the baseline's,
    so that a trial's extra top-level modules, such as quantize_dynamic's observers, fall
    inside its iterations).
    """
    _, m = measured_iterations(steps, warmup, exclude_compile=True, module=module)
    return m.durations_ns, m.excluded + m.traced_excluded


def bootstrap_speedup(
    baseline_ns: np.ndarray,
    trial_ns: np.ndarray,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> Speed:
    """median(baseline) / median(trial) with a percentile bootstrap interval at CONFIDENCE."""
    ratio, lo, hi = median_ratio_interval(
        baseline_ns, trial_ns, confidence=CONFIDENCE, resamples=resamples, seed=seed
    )
    return Speed(
        speedup=ratio,
        lo=lo,
        hi=hi,
        baseline_steps=len(baseline_ns),
        trial_steps=len(trial_ns),
    )


def metrics_of(d: np.ndarray, excluded: int, summary: StepSummary | None) -> StepSummary:
    """A trial's numbers: step statistics of measured durations (possibly pooled over repeated
    runs) with the resource peaks and means of its run.json summary."""
    stats = stats_of(d, count=len(d) + excluded, excluded=excluded)
    return StepSummary.model_validate(stats.model_dump()).with_resources_of(summary)


# -- output drift ---------------------------------------------------------------------------


def _load_steps(outputs_dir: Path) -> dict[int, dict[str, Any]]:
    import torch

    return {
        step: torch.load(p, map_location="cpu", weights_only=True)
        for step, p in output_steps(outputs_dir).items()
    }


def is_logits(name: str, shape: tuple[int, ...]) -> bool:
    """Outputs where top-1 agreement means something: named logits, or [batch, classes]."""
    lowered = name.lower()
    if any(k in lowered for k in NOT_LOGITS):
        return False
    return "logit" in lowered or (len(shape) == 2 and shape[-1] >= 2)


def _sampled(captured: dict[str, Any]) -> dict[str, Any]:
    """The sampling record of a captured step's outputs ({} when all were kept whole)."""
    sampled = captured.get("sampled")
    return dict(sampled.get("output") or {}) if isinstance(sampled, dict) else {}


def compare_outputs(baseline_dir: Path, trial_dir: Path) -> Drift:
    """Drift of the trial's captured outputs from the baseline's (steps and names in common)."""
    import torch

    from dsprof.runner.capture import aligned_rows

    base, trial = _load_steps(baseline_dir), _load_steps(trial_dir)
    drift = Drift()
    notes: list[str] = []
    cosines: list[float] = []
    agreements: list[float] = []
    for step in sorted(set(base) & set(trial)):
        b_out, t_out = base[step]["output"], trial[step]["output"]
        b_meta, t_meta = _sampled(base[step]), _sampled(trial[step])
        for name in sorted(set(b_out) & set(t_out)):
            a, b = b_out[name], t_out[name]
            full_shape = tuple((b_meta.get(name) or {}).get("shape") or a.shape)
            drift.tensors_compared += 1
            if name in b_meta or name in t_meta:
                # over the capture budget: compared on the rows both runs kept (capture.py)
                pair = aligned_rows(a, b_meta.get(name), b, t_meta.get(name))
                if pair is not None:
                    a, b = pair
            if a.shape != b.shape:
                notes.append(f"step {step} {name}: shape {tuple(a.shape)} -> {tuple(b.shape)}")
                drift.allclose = False
                cosines.append(0.0)
                continue
            if not a.is_floating_point():
                same = bool(torch.equal(a, b))
                drift.allclose = same and drift.allclose is not False
                continue
            a64, b64 = a.double(), b.double()
            diff = (a64 - b64).abs()
            drift.max_abs = max(drift.max_abs or 0.0, float(diff.max()) if diff.numel() else 0.0)
            rel = float(
                torch.linalg.vector_norm(a64 - b64) / torch.linalg.vector_norm(a64).clamp_min(1e-30)
            )
            drift.rel_l2 = max(drift.rel_l2 or 0.0, rel)
            close = bool(
                torch.allclose(b.float(), a.float(), rtol=ALLCLOSE_RTOL, atol=ALLCLOSE_ATOL)
            )
            drift.allclose = close and drift.allclose is not False
            rows_a = a64.reshape(-1, a64.shape[-1]) if a64.dim() else a64.reshape(1, 1)
            rows_b = b64.reshape(-1, b64.shape[-1]) if b64.dim() else b64.reshape(1, 1)
            cosines.append(
                float(
                    torch.nn.functional.cosine_similarity(rows_a, rows_b, dim=-1, eps=1e-30).mean()
                )
            )
            if is_logits(name, full_shape):
                agreements.append(float((rows_a.argmax(-1) == rows_b.argmax(-1)).double().mean()))
    if drift.tensors_compared == 0:
        notes.append(
            "no captured outputs in common (was capture on and did both runs reach a step?)"
        )
    drift.cosine = min(cosines) if cosines else None
    drift.top1_agreement = min(agreements) if agreements else None
    drift.note = "; ".join(notes[:5])
    return drift


def outputs_deterministic(outputs_dir: Path) -> bool | None:
    """Whether steps given identical inputs returned identical outputs; None without such steps."""
    import torch

    steps = _load_steps(outputs_dir)
    order = sorted(steps)
    verdicts = []
    for i, s in enumerate(order):
        for t in order[i + 1 :]:
            a, b = steps[s], steps[t]
            if a["input"].keys() != b["input"].keys() or not a["input"]:
                continue
            if all(torch.equal(a["input"][k], b["input"][k]) for k in a["input"]):
                verdicts.append(
                    a["output"].keys() == b["output"].keys()
                    and all(torch.equal(a["output"][k], b["output"][k]) for k in a["output"])
                )
    return all(verdicts) if verdicts else None


# -- the verdict ----------------------------------------------------------------------------


def drift_ok(risk: RiskClass, drift: Drift | None, tolerance: dict[str, float]) -> tuple[bool, str]:
    """Whether drift is within the recipe class's tolerance, and the reason in words."""
    if drift is None or drift.tensors_compared == 0:
        note = drift.note if drift is not None else "no outputs compared"
        return False, f"outputs could not be compared ({note})"
    if risk == "deterministic":
        if drift.deterministic is None:
            return False, "no two steps had identical inputs, so determinism could not be checked"
        return drift.deterministic, (
            "outputs are deterministic"
            if drift.deterministic
            else "outputs still vary for equal inputs"
        )
    if risk == "exact":
        if drift.allclose:
            return True, "outputs reproduce the baseline (fp32 allclose)"
        return (
            False,
            f"outputs differ from the baseline (max abs {drift.max_abs:.3g}), an exact recipe must reproduce them",
        )
    cos_min = tolerance.get("cosine", DEFAULT_COSINE)
    top1_min = tolerance.get("top1", DEFAULT_TOP1)
    if drift.cosine is not None and drift.cosine < cos_min:
        return False, f"cosine {drift.cosine:.4f} < {cos_min}"
    if drift.top1_agreement is not None and drift.top1_agreement < top1_min:
        return False, f"top-1 agreement {drift.top1_agreement:.3f} < {top1_min}"
    return True, f"cosine {drift.cosine:.5f}" + (
        f", top-1 {drift.top1_agreement:.3f}" if drift.top1_agreement is not None else ""
    )


def judge(
    risk: RiskClass,
    speed: Speed | None,
    drift: Drift | None,
    *,
    tolerance: dict[str, float] | None = None,
    min_gain: float = MIN_GAIN,
    memory_change: int | None = None,
) -> Verdict:
    """The verdict for one trial (see the module docstring for the rules)."""
    tolerance = tolerance or {}
    v = Verdict(accepted=False, outcome="insufficient-data", min_gain=min_gain, drift=drift)
    v.peak_memory_change_bytes = memory_change
    if speed is None or min(speed.baseline_steps, speed.trial_steps) < MIN_STEPS:
        n = 0 if speed is None else min(speed.baseline_steps, speed.trial_steps)
        v.reason = f"{n} measured steps; at least {MIN_STEPS} are needed (run more steps)"
        return v
    v.speedup, v.ci95 = speed.speedup, (speed.lo, speed.hi)
    outcome: Outcome
    if speed.lo >= 1 + min_gain:
        outcome = "win"
        speed_text = f"x{speed.speedup:.2f} [{speed.lo:.2f}, {speed.hi:.2f}]"
    elif speed.hi < 1:
        outcome = "slower"
        speed_text = f"slower: x{speed.speedup:.2f} [{speed.lo:.2f}, {speed.hi:.2f}]"
    else:
        outcome = "no-measurable-change"
        speed_text = (
            f"no measurable change: x{speed.speedup:.2f}, interval [{speed.lo:.2f}, {speed.hi:.2f}]"
            f" does not clear +{min_gain:.0%}"
        )
    ok, drift_text = drift_ok(risk, drift, tolerance)
    if risk == "deterministic":
        # eval-mode is judged by its outputs becoming deterministic (issue 4); speed is reported
        v.accepted = ok
        v.outcome = outcome if ok else "drift"
    else:
        v.accepted = ok and outcome == "win"
        v.outcome = "drift" if not ok else outcome
    v.reason = f"{speed_text}; {drift_text}"
    return v
