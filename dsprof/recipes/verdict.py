"""Verdicts: is a trial faster than the baseline beyond the noise, and are its outputs still right?

Speed: the ratio of iteration-time medians (baseline / trial; an iteration is timed from one
model call's start to the next, so time spent between calls counts: dsprof.core.steps) with a
percentile-bootstrap 95 % interval, resampling each run's measured steps independently. Warm-up steps and the leading compile steps
are excluded first, by dsprof.core.steps (the rules every step figure follows). Accepted only when the interval's lower end is at least 1 + MIN_GAIN; an
interval reaching below that but not wholly below 1 is "no measurable change", never a win,
unless the whole run's interval (below) clears 1 + MIN_GAIN itself: per-call medians of a
loader-bound loop (most steps instant, a few waiting on reads) can spread too wide to tell
while the wall time the user pays is measurably shorter.

What the user pays (`whole_run`): the model loop's wall time per run (every iteration, warm-up,
compile and recompile steps included) of the references against the trial's, for this script's
number of calls, with the one-time cost and the number of calls after which the steady saving
pays it back. A steady win whose whole run gains less than MIN_GAIN is "not-paid-back" (unless
--max-steps cut the runs short: the script makes more calls than were measured).

Outputs: the trial's captured outputs against the baseline's, tensor by tensor (same step, same
flattened name): max abs diff, relative L2 error, mean per-row cosine similarity over the last
dimension, top-1 agreement on class scores only (`is_class_scores`), fp32 allclose. For a
generate() script the generated token ids decide (`token_agreement`: the share of generated
positions with the same id), since the first forward calls' logits say little about the text.

Thresholds (module constants):
    MIN_GAIN = 0.03            issue 4: a real win is at least 3 %
    CONFIDENCE = 0.95          issue 4 / DESIGN.md: bootstrap 95 % interval
    BOOTSTRAP_RESAMPLES = 2000 Efron & Tibshirani (1993) recommend >= 1000 for percentile intervals
    MIN_STEPS = 5              fewer measured steps give no usable interval (dsprof.core.steps)
    COMPILE_STEP_FACTOR = 3.0  a leading step over 3x the median of the rest is warm-up/compile
                               (dsprof.core.steps: torch.utils.benchmark likewise discards
                               warm-up; the factor is dsprof's)
    DEFAULT_COSINE = 0.99, DEFAULT_TOP1 = 0.99   issue 4's defaults for approximate recipes
    DEFAULT_TOKENS = 0.99      generated tokens held to top-1's bound (a token is a top-1 choice)
    ALLCLOSE_RTOL = 1e-4, ALLCLOSE_ATOL = 1e-5   fp32 allclose loosened from torch's 1e-5/1e-8 to
                               admit reordered reductions (another thread count sums differently)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dsprof.core.fix import Drift, Outcome, RiskClass, Verdict, WholeRun
from dsprof.core.manifest import StepSummary
from dsprof.core.steps import (
    COMPILE_STEP_FACTOR,
    MIN_STEPS,
    iterations,
    measured_iterations,
    median_ratio_interval,
    stats_of,
)
from dsprof.core.steps import measured_durations as measured

if TYPE_CHECKING:
    import pandas as pd

MIN_GAIN = 0.03
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
DEFAULT_COSINE = 0.99
DEFAULT_TOP1 = 0.99
DEFAULT_TOKENS = 0.99


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


@dataclass(frozen=True)
class RunLoop:
    """One run's model loop: every iteration in order, how many lead it before the steady
    part (warm-up and compile steps), and whether --max-steps ended it."""

    durations_ns: np.ndarray
    excluded: int
    cut_short: bool = False

    @property
    def steady(self) -> np.ndarray:
        return self.durations_ns[self.excluded :]

    def slow_mask(self) -> np.ndarray:
        """Steady steps over COMPILE_STEP_FACTOR x the steady median (recompiles, stalls)."""
        steady = self.steady
        if len(steady) == 0:
            return np.zeros(0, dtype=bool)
        return np.asarray(steady > COMPILE_STEP_FACTOR * np.median(steady))


def run_loop(
    steps: pd.DataFrame | None,
    warmup: int,
    module: str | None = None,
    max_steps: int | None = None,
    calls: int | None = None,
) -> RunLoop:
    """A run's RunLoop (see measured_durations for which steps lead); `calls`: the model calls
    the run made, to tell when --max-steps cut it. Every iteration counts, traced or not: what
    the user pays is the whole loop (the runs judged this way, references, trials and the
    patched script, are untraced)."""
    it = iterations(steps, module=module)
    durations = it.durations_ns
    if it.basis == "iterations" and steps is not None:
        # iterations run start to start: the last call has none, but the user waits for it
        # (a recompile there is paid like any other)
        durations = np.append(durations, _last_call_ns(steps, it.module))
    _, excluded = measured(durations, warmup, exclude_compile=True)
    made = calls if calls is not None else len(durations)
    return RunLoop(durations, excluded, max_steps is not None and made >= max_steps)


def _last_call_ns(steps: pd.DataFrame, module: str) -> int:
    """The duration of the last call of `module` (of any root when the table has no such)."""
    calls = steps
    if module and "module" in steps and (steps["module"] == module).any():
        calls = steps[steps["module"] == module]
    return int(calls.sort_values("start_ns")["duration_ns"].iloc[-1])


def whole_run(
    references: list[RunLoop],
    trials: list[RunLoop],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    measured_one_time_ns: float = 0.0,
) -> WholeRun | None:
    """What the user pays over this script's calls, references against the trial (see WholeRun).

    `measured_one_time_ns`: a one-time cost the trial measured directly (torch.compile's own
    compile time). The cost read from step times is the trial's time beyond its steady median;
    when every step after the first recompiles (a few generate() calls) that median is itself a
    recompile and the difference says little or less than nothing, so the cost is never taken
    below what the compiler reported it spent.

    The interval resamples each run's steady steps and keeps its leading steps and its slow
    steady steps (recompiles) as they were: they are one-time costs, not noise to average out.
    """
    refs = [r for r in references if len(r.durations_ns) and len(r.steady)]
    runs = [t for t in trials if len(t.durations_ns) and len(t.steady)]
    if not refs or not runs:
        return None
    n = round(float(np.mean([len(t.durations_ns) for t in runs])))
    r = float(np.median(np.concatenate([x.steady for x in refs])))
    t = float(np.median(np.concatenate([x.steady for x in runs])))

    def total(loop: RunLoop, steady_median: float) -> float:
        # a run with more or fewer iterations than the trial's is brought to n at its steady rate
        return float(loop.durations_ns.sum()) + (n - len(loop.durations_ns)) * steady_median

    ref_total = float(np.mean([total(x, r) for x in refs]))
    trial_total = float(np.mean([total(x, t) for x in runs]))
    cost = max((trial_total - n * t) - (ref_total - n * r), measured_one_time_ns)
    saving = r - t
    if saving > 0:
        break_even: int | None = max(0, math.ceil(cost / saving))
    else:
        break_even = None if cost > 0 or saving < 0 else 0

    def late(loops: list[RunLoop]) -> tuple[float, float]:
        counts, excess = [], []
        for x in loops:
            mask, steady = x.slow_mask(), x.steady
            counts.append(int(mask.sum()))
            excess.append(float((steady[mask] - np.median(steady)).sum()) if mask.any() else 0.0)
        return float(np.mean(counts)), float(np.mean(excess))

    (ref_late, ref_late_ns), (trial_late, trial_late_ns) = late(refs), late(runs)
    rng = np.random.default_rng(seed)

    def boot(loops: list[RunLoop], steady_median: float) -> np.ndarray:
        sums = np.zeros(resamples)
        for x in loops:
            mask = x.slow_mask()
            steady = x.steady[~mask]
            fixed = float(x.durations_ns[: x.excluded].sum() + x.steady[mask].sum())
            fixed += (n - len(x.durations_ns)) * steady_median
            if len(steady):
                draws = rng.choice(steady, size=(resamples, len(steady)), replace=True)
                sums += fixed + draws.sum(axis=1)
            else:
                sums += fixed
        return sums / len(loops)

    ratios = boot(refs, r) / np.maximum(boot(runs, t), 1.0)
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(ratios, [tail, 100 - tail])
    return WholeRun(
        calls=n,
        baseline_ns=int(ref_total),
        trial_ns=int(trial_total),
        speedup=ref_total / trial_total if trial_total > 0 else 1.0,
        ci95=(float(lo), float(hi)),
        per_call_saving_ns=int(saving),
        one_time_cost_ns=int(cost),
        break_even_calls=break_even,
        late_slow_steps=max(0, round(trial_late - ref_late)),
        late_slow_ns=max(0, int(trial_late_ns - ref_late_ns)),
        cut_short=any(x.cut_short for x in runs),
    )


def whole_run_text(w: WholeRun) -> str:
    """The whole run in words: ratio, interval, one-time cost and break-even."""
    ci = f" [{w.ci95[0]:.2f}, {w.ci95[1]:.2f}]" if w.ci95 else ""
    text = f"whole run x{w.speedup:.2f}{ci} over {w.calls} calls"
    if w.one_time_cost_ns > 0.01 * w.baseline_ns:
        text += f"; one-time cost {_seconds(w.one_time_cost_ns)}"
        if w.late_slow_steps:
            text += (
                f" ({w.late_slow_steps} slow steps after the start, {_seconds(w.late_slow_ns)}: "
                "recompiles or stalls)"
            )
        if w.break_even_calls is None:
            text += ", never paid back (no per-call saving)"
        else:
            text += f", paid back after {w.break_even_calls:,} calls"
    if w.cut_short:
        text += " (runs ended by --max-steps: the script makes more calls)"
    return text


def _seconds(ns: float) -> str:
    return f"{ns / 1e9:.2f} s" if abs(ns) >= 1e8 else f"{ns / 1e6:.1f} ms"


def metrics_of(d: np.ndarray, excluded: int, summary: StepSummary | None) -> StepSummary:
    """A trial's numbers: step statistics of measured durations (possibly pooled over repeated
    runs) with the resource peaks and means of its run.json summary."""
    stats = stats_of(d, count=len(d) + excluded, excluded=excluded)
    return StepSummary.model_validate(stats.model_dump()).with_resources_of(summary)


# -- the verdict ----------------------------------------------------------------------------


def drift_ok(risk: RiskClass, drift: Drift | None, tolerance: dict[str, float]) -> tuple[bool, str]:
    """Whether drift is within the recipe class's tolerance, and the reason in words."""
    if drift is None or (drift.tensors_compared == 0 and drift.tokens_compared == 0):
        note = drift.note if drift is not None else "no outputs compared"
        return False, f"outputs could not be compared ({note})"
    if risk == "deterministic":
        drift.metric = "deterministic"
        if drift.deterministic is None:
            return False, "no two steps had identical inputs, so determinism could not be checked"
        return drift.deterministic, (
            "outputs are deterministic"
            if drift.deterministic
            else "outputs still vary for equal inputs"
        )
    if risk == "exact":
        drift.metric = "allclose"
        if drift.token_agreement is not None and drift.token_agreement < 1.0:
            return False, (
                f"generated tokens differ ({drift.token_agreement:.1%} of "
                f"{drift.tokens_compared} the same), an exact recipe must reproduce them"
            )
        if drift.allclose is None and drift.token_agreement == 1.0:
            return True, f"generated tokens reproduce the baseline ({drift.tokens_compared})"
        if drift.allclose:
            return True, "outputs reproduce the baseline (fp32 allclose)"
        return (
            False,
            f"outputs differ from the baseline (max abs {drift.max_abs:.3g}), an exact recipe must reproduce them",
        )
    cos_min = tolerance.get("cosine", DEFAULT_COSINE)
    top1_min = tolerance.get("top1", DEFAULT_TOP1)
    if drift.token_agreement is not None:
        # generate(): the text is what the user gets; logits of the first calls are secondary
        drift.metric = "tokens"
        tok_min = tolerance.get("tokens", DEFAULT_TOKENS)
        share = f"{drift.token_agreement:.3f} of {drift.tokens_compared} generated tokens the same"
        if drift.token_agreement < tok_min:
            return False, f"token agreement {share} < {tok_min}"
        return True, f"token agreement {share}"
    drift.metric = "cosine+top1" if drift.top1_agreement is not None else "cosine"
    if drift.cosine is None:
        return False, "outputs could not be compared (no floating-point output)"
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
    whole: WholeRun | None = None,
) -> Verdict:
    """The verdict for one trial (see the module docstring for the rules)."""
    tolerance = tolerance or {}
    v = Verdict(accepted=False, outcome="insufficient-data", min_gain=min_gain, drift=drift)
    v.peak_memory_change_bytes = memory_change
    v.whole_run = whole
    if speed is None or min(speed.baseline_steps, speed.trial_steps) < MIN_STEPS:
        n = 0 if speed is None else min(speed.baseline_steps, speed.trial_steps)
        v.reason = f"{n} measured steps; at least {MIN_STEPS} are needed (run more steps)"
        if whole is not None and not whole.cut_short and whole.ci95 and whole.ci95[1] < 1:
            # too few steady steps for a per-call figure, but the run the user pays for is
            # measurably slower (a T5 generate() script of a few calls, compiled): say so
            v.outcome = "not-paid-back" if whole.per_call_saving_ns > 0 else "slower"
            _, drift_text = drift_ok(risk, drift, tolerance)
            v.reason = (
                f"{whole_run_text(whole)}: the whole run is slower ({n} steady steps: too few "
                f"for a per-call figure); {drift_text}"
            )
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
    whole_decides = False
    if risk == "deterministic":
        # eval-mode is judged by its outputs becoming deterministic (issue 4); speed is reported
        v.accepted = ok
        v.outcome = outcome if ok else "drift"
    else:
        whole_decides = (
            outcome == "no-measurable-change"
            and whole is not None
            and not whole.cut_short
            and whole.ci95 is not None
            and whole.ci95[0] >= 1 + min_gain
        )
        if whole_decides:
            # the per-call interval is too wide to tell (a loader's steps: most instant, a few
            # waiting on reads), but the run the user pays for clears the same bar
            outcome = "win"
            speed_text = (
                f"x{speed.speedup:.2f}: the per-call interval [{speed.lo:.2f}, {speed.hi:.2f}] is "
                f"too wide to clear +{min_gain:.0%}"
            )
        elif whole is not None and not whole.cut_short and outcome != "slower":
            measurably_slower = whole.ci95 is not None and whole.ci95[1] < 1
            if whole.speedup < 1 + min_gain and (outcome == "win" or measurably_slower):
                # this script's run as a whole is not faster: the user would pay the one-time
                # cost (compiling, recompiling) and not get it back at its number of calls
                outcome = "not-paid-back" if whole.per_call_saving_ns > 0 else "slower"
        v.accepted = ok and outcome == "win"
        v.outcome = "drift" if not ok else outcome
    if whole is not None:
        speed_text += " per call (steady)"
        if whole_decides:
            speed_text += ", but the whole run clears it"
        speed_text = f"{speed_text}; {whole_run_text(whole)}"
        if outcome == "not-paid-back":
            speed_text += f": not paid back, the whole run gains less than {min_gain:.0%}"
        elif outcome == "slower" and speed.hi >= 1:
            speed_text += ": the whole run is slower"
    v.reason = f"{speed_text}; {drift_text}"
    return v
