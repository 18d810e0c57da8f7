"""Step-time statistics: the one definition of a step and the one function behind every figure.

    iterations(steps) -> Iterations          which interval is a step (the iteration)
    step_stats(durations_ns, warmup, exclude_compile=False) -> StepStats
    measured_iterations(steps, warmup, ...) -> (Iterations, Measured)   the ones measured
    iteration_stats(steps, warmup, exclude_compile=False) -> StepStats   (the two together)

A step is the script's iteration, timed start to start: from one call of the model (the root
module called most often) to its next call, so whatever the loop does between calls (waiting for
the DataLoader, tokenizing, `.item()`, printing) counts. The model call's own time is kept beside
it as a second figure ("model 3.2 ms of a 40 ms iteration"). Steps marked with `dsprof.step()`
are iterations already (marker to marker) and have no model figure. A run with a single model
call has no start-to-start interval: its step is the model call, and says so (`basis`). Calls
that overlap (the model served from a thread pool) have no iteration either: each call is a step
with its own duration (`basis` "concurrent-calls").
Throughput is completions over the window: iterations measured / the time they span (for
overlapping calls, the time they cover together, counted once: `busy_ns`).

The terminal summary and run.json (runner/finalize.py), the report's view-model, the dashboard,
markdown, `dsprof ls`, `dsprof compare` and the fix verdicts all use it; the verdicts also cut
leading compile steps. Which interval counts as a step is decided in `iterations` alone.

Rules (module constants):
    warm-up: the first `warmup` steps are left out, unless the run has no more steps than that
        (a short run is summarised over all its steps rather than not at all)
    traced: iterations that overlap the profiler's recording (steps.parquet `traced`, the call
        that starts or ends them) are left out when at least MIN_STEPS untraced ones remain:
        the profiler slows the steps it records (README, "Collection overhead"), so the figures
        are the script's own speed; a run with fewer untraced iterations keeps its traced ones
        and says how many it holds (`traced_included`)
    exclude_compile: then leading steps over COMPILE_STEP_FACTOR x the median of the rest are
        left out too, while more than MIN_STEPS remain (torch.compile's first calls; DESIGN.md:
        "compile time must be excluded from step statistics"; torch.utils.benchmark likewise
        discards warm-up, the factor is dsprof's)
    p50 / p99: numpy's linear-interpolation percentiles, truncated to int ns; mean likewise
    throughput: measured steps / their summed time (steps per second)

Pure: numpy only, no torch, no pandas import (a steps table is read through its columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, computed_field, model_validator

# fewer measured steps than this give no usable verdict interval, and compile-step trimming
# never cuts below it
MIN_STEPS = 5
# a leading step slower than this multiple of the median of the rest is a warm-up/compile step
COMPILE_STEP_FACTOR = 3.0


# what a StepStats' steps are: "iterations" (model call to model call), "markers" (dsprof.step()
# to dsprof.step()), "model-calls" (one call: no start-to-start interval); "" in documents
# written before steps were iterations (their steps were model calls, labelled "step")
StepBasis = Literal["", "iterations", "markers", "model-calls", "concurrent-calls"]
BASIS_LABEL: dict[str, str] = {
    "iterations": "iteration",
    "markers": "iteration",
    "model-calls": "model call",
    "concurrent-calls": "model call",
    "": "step",
}
# step sources that are calls of the model (dsprof/runner/steps.py), as opposed to markers
MODEL_CALL_SOURCES = ("module", "forward", "script")


class StepStats(BaseModel):
    """Step-time figures over the measured steps (None when no step was measured)."""

    count: int = Field(default=0, description="steps recorded, warm-up included")
    steps_excluded: int = Field(default=0, description="warm-up (and compile) steps left out")
    traced_excluded: int = Field(
        default=0, description="steps left out because the profiler recorded them"
    )
    traced_included: int = Field(
        default=0, description="measured steps the profiler recorded (too few untraced ones)"
    )
    p50_ns: int | None = None
    p99_ns: int | None = None
    mean_ns: int | None = None
    throughput_per_s: float | None = None
    basis: StepBasis = Field(default="", description="what a step is (see StepBasis)")
    module: str = Field(default="", description="the root module whose calls mark iterations")
    model_p50_ns: int | None = Field(
        default=None, description="the model call's own time inside the measured iterations"
    )
    model_p99_ns: int | None = None
    model_mean_ns: int | None = None

    @property
    def label(self) -> str:
        """What one step is, in a word or two: 'iteration', 'model call' (or 'step': older)."""
        return BASIS_LABEL[self.basis]

    @property
    def current(self) -> bool:
        """Whether these figures follow today's rules: False for a document written before
        steps were iterations (no basis) or before traced iterations were left out (no
        traced_excluded); readers then recompute them from the steps table."""
        return bool(self.basis) and "traced_excluded" in self.model_fields_set

    @property
    def model_share(self) -> float | None:
        """The model call's share of the iteration (means), when both are known."""
        if self.model_mean_ns is None or not self.mean_ns or self.basis != "iterations":
            return None
        return self.model_mean_ns / self.mean_ns

    @computed_field  # type: ignore[prop-decorator]
    @property
    def steps_measured(self) -> int:
        """Steps behind p50 / p99 / mean / throughput."""
        return max(self.count - self.steps_excluded - self.traced_excluded, 0)

    @model_validator(mode="before")
    @classmethod
    def _from_measured(cls, data: Any) -> Any:
        # fix.json written before StepStats held `steps_measured` and `steps_excluded` only
        if isinstance(data, dict) and "count" not in data and "steps_measured" in data:
            data = {
                **data,
                "count": int(data["steps_measured"]) + int(data.get("steps_excluded", 0)),
            }
        return data


def measured_durations(
    durations_ns: Sequence[int] | np.ndarray, warmup: int = 0, *, exclude_compile: bool = False
) -> tuple[np.ndarray, int]:
    """The durations the statistics are taken over, and how many were left out (module rules)."""
    d = np.asarray(durations_ns, dtype=np.int64)
    start = warmup if len(d) > warmup else 0
    rest = d[start:]
    if exclude_compile:
        while len(rest) > MIN_STEPS and rest[0] > COMPILE_STEP_FACTOR * np.median(rest[1:]):
            rest = rest[1:]
            start += 1
    return rest, start


def stats_of(measured_ns: np.ndarray, *, count: int, excluded: int) -> StepStats:
    """StepStats of durations already measured (possibly pooled over repeated runs)."""
    stats = StepStats(count=count, steps_excluded=excluded)
    d = np.asarray(measured_ns, dtype=np.int64)
    if len(d):
        stats.p50_ns = int(np.percentile(d, 50))
        stats.p99_ns = int(np.percentile(d, 99))
        stats.mean_ns = int(d.mean())
        total = float(d.sum())
        stats.throughput_per_s = float(len(d) / (total / 1e9)) if total > 0 else None
    return stats


def median_ratio_interval(
    a_ns: Sequence[int] | np.ndarray,
    b_ns: Sequence[int] | np.ndarray,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """median(a) / median(b) and its percentile-bootstrap interval at `confidence`, resampling
    each sample independently (fixed seed: the same runs give the same interval)."""
    a, b = np.asarray(a_ns, dtype=np.float64), np.asarray(b_ns, dtype=np.float64)
    rng = np.random.default_rng(seed)
    ra = rng.choice(a, size=(resamples, len(a)), replace=True)
    rb = rng.choice(b, size=(resamples, len(b)), replace=True)
    ratios = np.median(ra, axis=1) / np.median(rb, axis=1)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(ratios, [tail, 100 - tail])
    return float(np.median(a) / np.median(b)), float(lo), float(hi)


def step_stats(
    durations_ns: Sequence[int] | np.ndarray, warmup: int = 0, *, exclude_compile: bool = False
) -> StepStats:
    """Step-time statistics of one run's step durations, in step order (see the module rules)."""
    measured, excluded = measured_durations(durations_ns, warmup, exclude_compile=exclude_compile)
    return stats_of(measured, count=len(durations_ns), excluded=excluded)


@dataclass(frozen=True)
class Iterations:
    """A run's steps as iterations, in order (see the module docstring)."""

    durations_ns: np.ndarray
    model_ns: np.ndarray | None  # the model call's time in each iteration (None for markers)
    starts_ns: np.ndarray
    basis: StepBasis
    module: str = ""
    # whether each iteration overlaps the profiler's recording (None: the table does not say)
    traced: np.ndarray | None = None

    @property
    def ends_ns(self) -> np.ndarray:
        """Where each iteration ends (the next one's start)."""
        return self.starts_ns + self.durations_ns


@dataclass(frozen=True)
class Measured:
    """The iterations the statistics are taken over (see the module rules), with the model
    call's time and the start of each, and what was left out."""

    durations_ns: np.ndarray
    model_ns: np.ndarray | None
    starts_ns: np.ndarray
    count: int  # iterations recorded
    excluded: int  # warm-up (and compile) iterations left out
    traced_excluded: int  # traced iterations left out
    traced_included: int  # traced iterations measured (too few untraced ones to leave them out)


NO_ITERATIONS = Iterations(
    np.array([], dtype=np.int64), None, np.array([], dtype=np.int64), basis="iterations"
)


def busy_ns(starts: Sequence[int], ends: Sequence[int]) -> int:
    """Time covered by at least one of the intervals (their union's length)."""
    total = 0
    cur_start = cur_end = None
    for s, e in sorted(zip(starts, ends, strict=True)):
        if cur_end is None or s > cur_end:
            if cur_start is not None and cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = s, e
        else:
            cur_end = max(cur_end, e)
    if cur_start is not None and cur_end is not None:
        total += cur_end - cur_start
    return int(total)


def calls_overlap(starts: Sequence[int], ends: Sequence[int]) -> bool:
    """True when some call began before an earlier one (in start order) had ended."""
    last_end = None
    for s, e in sorted(zip(starts, ends, strict=True)):
        if last_end is not None and s < last_end:
            return True
        last_end = e if last_end is None else max(last_end, e)
    return False


def steps_overlap(steps: Any) -> bool:
    """Whether a steps table's calls overlap in time (several threads calling the model)."""
    if steps is None or len(steps) < 2 or "start_ns" not in steps or "end_ns" not in steps:
        return False
    return calls_overlap(steps["start_ns"].tolist(), steps["end_ns"].tolist())


def main_module(steps: Any) -> str | None:
    """The root module class most model-call steps belong to (the model); None for markers."""
    if steps is None or len(steps) == 0 or "module" not in steps:
        return None
    calls = steps[steps["source"].isin(MODEL_CALL_SOURCES)] if "source" in steps else steps
    counts = calls["module"].value_counts()
    return str(counts.index[0]) if len(counts) and counts.index[0] else None


def iterations(steps: Any, *, module: str | None = None) -> Iterations:
    """The iterations of a steps table (steps.parquet's columns, any row order).

    module: the model whose calls mark iterations (default: main_module); a module the table
        does not hold means every model call. Other root modules called inside the loop (a
        tokenizer model, quantize_dynamic's observers) fall inside the iterations.
    """
    if steps is None or len(steps) == 0 or "duration_ns" not in steps or "start_ns" not in steps:
        return NO_ITERATIONS
    if "step" in steps:
        steps = steps.sort_values("step")
    source = steps.get("source")
    if source is not None and (source == "marker").any():
        # once the script marks steps, the markers define them (runner/finalize.py)
        marked = steps[source == "marker"]
        return Iterations(
            marked["duration_ns"].to_numpy(dtype=np.int64),
            None,
            marked["start_ns"].to_numpy(dtype=np.int64),
            basis="markers",
            traced=_traced(marked),
        )
    module = module or main_module(steps)
    calls = steps
    if module is not None and "module" in steps and (steps["module"] == module).any():
        calls = steps[steps["module"] == module]
    starts = calls["start_ns"].to_numpy(dtype=np.int64)
    model = calls["duration_ns"].to_numpy(dtype=np.int64)
    name = module or ""
    traced = _traced(calls)
    if len(calls) < 2:
        return Iterations(model, model, starts, "model-calls", name, traced)
    if steps_overlap(calls):  # calls from several threads at once: each call is a step
        return Iterations(model, model, starts, "concurrent-calls", name, traced)
    # an iteration runs from its call's start to the next one's: traced when either call was
    # (the profiler starts inside a call's start and stops, exporting, after a call's end)
    spans = None if traced is None else traced[:-1] | traced[1:]
    return Iterations(np.diff(starts), model[:-1], starts[:-1], "iterations", name, spans)


def _traced(steps: Any) -> np.ndarray | None:
    if "traced" not in steps:
        return None
    return steps["traced"].fillna(False).to_numpy(dtype=bool)


def measured_iterations(
    steps: Any, warmup: int = 0, *, exclude_compile: bool = False, module: str | None = None
) -> tuple[Iterations, Measured]:
    """A run's iterations and the ones its statistics are taken over (the module rules)."""
    it = iterations(steps, module=module)
    rest, excluded = measured_durations(it.durations_ns, warmup, exclude_compile=exclude_compile)
    idx = np.arange(excluded, excluded + len(rest))
    traced_excluded = traced_included = 0
    if it.traced is not None and len(idx):
        traced = it.traced[idx]
        if int((~traced).sum()) >= MIN_STEPS:
            traced_excluded = int(traced.sum())
            idx = idx[~traced]
        else:
            traced_included = int(traced.sum())
    measured = Measured(
        durations_ns=it.durations_ns[idx],
        model_ns=None if it.model_ns is None else it.model_ns[idx],
        starts_ns=it.starts_ns[idx],
        count=len(it.durations_ns),
        excluded=excluded,
        traced_excluded=traced_excluded,
        traced_included=traced_included,
    )
    return it, measured


def iteration_stats(
    steps: Any, warmup: int = 0, *, exclude_compile: bool = False, module: str | None = None
) -> StepStats:
    """Statistics of a run's iterations, with the model call's time over the same iterations."""
    it, m = measured_iterations(steps, warmup, exclude_compile=exclude_compile, module=module)
    measured = m.durations_ns
    stats = stats_of(measured, count=m.count, excluded=m.excluded)
    stats.traced_excluded, stats.traced_included = m.traced_excluded, m.traced_included
    stats.basis, stats.module = it.basis, it.module
    if it.basis == "concurrent-calls" and len(measured):
        # overlapping calls share wall time: completions over the time they cover together
        busy = busy_ns(m.starts_ns.tolist(), (m.starts_ns + measured).tolist())
        stats.throughput_per_s = float(len(measured) / (busy / 1e9)) if busy > 0 else None
    if m.model_ns is not None and len(measured):
        stats.model_p50_ns = int(np.percentile(m.model_ns, 50))
        stats.model_p99_ns = int(np.percentile(m.model_ns, 99))
        stats.model_mean_ns = int(m.model_ns.mean())
    return stats
