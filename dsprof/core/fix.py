"""fix.json: one `dsprof fix` session, written into the baseline run folder.

`dsprof fix --json` prints the same document (FixSession, one schema): the trials carry their
verdict at a glance (recipe, accepted, speedup, ci95, drift, reason) as computed fields.

A session is: the baseline run, the recipes considered (each with why it does or does not apply),
one trial run per recipe (a run folder under <baseline>/trials/), a verdict per trial (speed with a
bootstrap interval, memory, output drift), the greedy combination of the accepted recipes measured
again, and the changes written into the script by `--apply`. No torch imports here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    computed_field,
    model_serializer,
)

from dsprof.core.manifest import StepSummary

FIX_SCHEMA_VERSION = 1

RiskClass = Literal["exact", "approximate", "deterministic"]
TrialStatus = Literal["ok", "failed", "skipped"]
# what a verdict concluded; only "win" is accepted, except eval-mode alone, which is accepted
# when its outputs become deterministic whatever the speed (issue 4: judged by determinism)
Outcome = Literal[
    "win",  # the interval's conservative end clears the minimum gain and drift is within tolerance
    "no-measurable-change",  # the interval reaches into the noise band
    "slower",  # the interval lies below 1
    "drift",  # faster or not, the outputs moved beyond the tolerance
    "failed",  # the trial run raised or exited non-zero
    "insufficient-data",  # too few steps to say anything
    # faster per call, but its one-time cost (compiling, recompiling, quantizing) is not paid
    # back over this script's number of calls: the whole run is not faster (issue 17)
    "not-paid-back",
    # the recipe found nothing to change (sdpa on a model that already uses it, int8 without a
    # Linear): whatever the timer says, there is no change to accept
    "unchanged",
]
# what a trial's outputs were judged by (issue 17): generated token ids of generate(), cosine for
# embeddings and hidden states, cosine and top-1 for class scores, fp32 allclose for exact
# recipes, identical outputs on identical inputs for eval-mode
DriftMetric = Literal["", "tokens", "cosine", "cosine+top1", "allclose", "deterministic"]


class Applicability(BaseModel):
    """Whether one recipe applies to the baseline run, and why (not)."""

    recipe: str
    applies: bool
    reason: str
    risk: RiskClass
    findings: list[str] = Field(default_factory=list, description="categories it addresses here")
    forced: bool = Field(default=False, description="named with --recipe")


class Drift(BaseModel):
    """Trial outputs against the baseline's captured outputs (same steps, same tensor names)."""

    tensors_compared: int = 0
    max_abs: float | None = None
    rel_l2: float | None = Field(default=None, description="||a-b|| / ||a||, worst tensor")
    cosine: float | None = Field(default=None, description="lowest per-row cosine similarity")
    top1_agreement: float | None = Field(
        default=None, description="share of rows with the same argmax (logits-shaped outputs)"
    )
    allclose: bool | None = Field(default=None, description="fp32 allclose on every tensor")
    deterministic: bool | None = Field(
        default=None, description="repeated steps on the same inputs gave the same outputs"
    )
    metric: DriftMetric = Field(default="", description="what the verdict judged the outputs by")
    token_agreement: float | None = Field(
        default=None,
        description="generate(): share of generated token positions with the same id",
    )
    tokens_compared: int = Field(default=0, description="generated token positions compared")
    output_types: list[str] = Field(
        default_factory=list,
        description="types the model returned when no tensor could be captured from them",
    )
    note: str = ""


class WholeRun(BaseModel):
    """What the user pays: the model loop's wall time over this script's number of calls.

    Per run, the sum of every iteration (warm-up, compile and recompile steps included);
    references and repeats averaged. The one-time cost is what the trial spends beyond its
    steady per-call time, less the same for the reference; it is paid back after
    `break_even_calls` calls at the steady saving per call.
    """

    calls: int = Field(description="model calls per run of the script (its loop's steps)")
    baseline_ns: int = Field(description="reference runs: mean model-loop wall time")
    trial_ns: int = Field(description="trial runs: mean model-loop wall time")
    speedup: float = Field(description="baseline_ns / trial_ns")
    ci95: tuple[float, float] | None = Field(
        default=None, description="bootstrap 95 % interval (steady steps resampled per run)"
    )
    per_call_saving_ns: int = Field(description="reference median - trial median (steady state)")
    one_time_cost_ns: int = Field(
        description="trial time beyond its steady per-call cost, less the reference's; never "
        "less than the compile time torch.compile reported"
    )
    break_even_calls: int | None = Field(
        default=None, description="calls after which the one-time cost is paid back; None: never"
    )
    late_slow_steps: int = Field(
        default=0,
        description="steps after the leading ones over 3x the steady median (recompiles), "
        "beyond the reference's count",
    )
    late_slow_ns: int = Field(default=0, description="their time beyond the steady median")
    cut_short: bool = Field(
        default=False, description="runs were ended by --max-steps: the script makes more calls"
    )


class Verdict(BaseModel):
    """The judgement of one trial against the baseline."""

    accepted: bool
    outcome: Outcome
    speedup: float | None = Field(default=None, description="baseline median / trial median")
    ci95: tuple[float, float] | None = Field(default=None, description="bootstrap 95 % interval")
    min_gain: float = Field(default=0.03, description="the conservative end must exceed 1+min_gain")
    peak_memory_change_bytes: int | None = None
    memory_basis: str = Field(
        default="",
        description="what peak_memory_change_bytes compares: 'rss' (process resident set) or "
        "'cuda-reserved' (the caching allocator's reserved bytes, cuda_memory.parquet)",
    )
    whole_run: WholeRun | None = Field(
        default=None, description="the whole model loop, one-time costs included (issue 17)"
    )
    compile: dict[str, float] = Field(
        default_factory=dict,
        description="torch.compile counters in the trial: graphs, recompiles, compile_s",
    )
    drift: Drift | None = None
    reason: str = ""


class Trial(BaseModel):
    """One trial run: recipes applied in a child run of the same script."""

    trial_id: str
    recipes: list[str]
    run_dir: str = Field(default="", description="relative to the baseline run folder")
    run_id: str = ""
    repeat_run_dirs: list[str] = Field(
        default_factory=list, description="further runs of the same trial (--repeats), pooled"
    )
    status: TrialStatus = "ok"
    error: str | None = None
    combined: bool = Field(default=False, description="the greedy combination of accepted recipes")
    recipe_status: dict[str, object] = Field(
        default_factory=dict, description="what trial.install reported per recipe (child.json)"
    )
    metrics: StepSummary = Field(
        default_factory=StepSummary, description="measured steps: warm-up and compile excluded"
    )
    verdict: Verdict | None = None

    @model_serializer(mode="wrap")
    def _with_verdict_at_a_glance(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The document adds the verdict at a glance, as `dsprof fix --json` readers want it
        (issue 4): recipe, accepted, outcome, speedup, ci95, drift, reason. Derived from
        `verdict` (a fix.json read back ignores them and derives them again)."""
        data: dict[str, Any] = handler(self)
        v, glance = self.verdict, data.get("verdict") or {}
        data.update(
            recipe="+".join(self.recipes),
            accepted=bool(v and v.accepted),
            outcome=v.outcome if v else self.status,
            speedup=glance.get("speedup"),
            ci95=glance.get("ci95"),
            drift=glance.get("drift"),
            reason=v.reason if v else (self.error or ""),
        )
        return data


class AppliedChange(BaseModel):
    """One code change `--apply` made (or, when `manual`, printed for the user to make)."""

    recipe: str
    file: str
    placement: Literal["top", "after-model", "manual"]
    line: int | None = Field(default=None, description="1-based line the code was inserted after")
    code: str
    manual: bool = False
    reason: str = ""


class ApplyResult(BaseModel):
    """What `--apply` did to the script and what re-running the patched script measured."""

    script: str
    backup: str | None = None
    dry_run: bool = False
    diff: str = ""
    changes: list[AppliedChange] = Field(default_factory=list)
    check_run: str | None = Field(default=None, description="run folder of the patched script")
    check_speedup: float | None = None
    check_ci95: tuple[float, float] | None = None
    check_whole_run_speedup: float | None = Field(
        default=None, description="patched script's model loop against the references'"
    )
    check_reason: str = ""
    check_ok: bool | None = Field(
        default=None,
        description="the patched script ran and was not slower; False: restored (None: not run)",
    )
    restored: bool = Field(
        default=False, description="the original script was put back after a failed check"
    )


# the closing reference run against the first (same script, no recipe): its 95 % interval must
# lie within this band around 1 for the machine to count as steady. A wider interval means the
# noise alone moves the median by more than that, so it is called too wide to judge, never
# "stable" (issue 19: an interval of [0.19, 3.18] had been called stable).
REFERENCE_STABLE_BAND = 0.10

NoiseState = Literal["stable", "load-changed", "too-wide"]


class NoiseCheck(BaseModel):
    """The first and the closing reference run compared: did the machine's load move?"""

    speedup: float = Field(description="median of the first / median of the closing reference")
    ci95: tuple[float, float]
    state: NoiseState
    band: float = Field(
        default=REFERENCE_STABLE_BAND,
        description="the stated width: an interval beyond 1 +- band is too noisy to call stable",
    )

    @property
    def sentence(self) -> str:
        """The check in words, with its interval."""
        lo, hi = self.ci95
        text = f"closing reference vs first: x{self.speedup:.2f} [{lo:.2f}, {hi:.2f}]"
        if self.state == "stable":
            return f"{text}: stable (within ±{REFERENCE_STABLE_BAND:.0%})"
        if self.state == "load-changed":
            return (
                f"{text}: the machine's load changed during the session, so speedups carry that "
                "too (references pooled; --repeats interleaves more runs)"
            )
        return (
            f"{text}: too wide to judge the noise (more than ±{REFERENCE_STABLE_BAND:.0%}); "
            "treat small speedups with care (--repeats interleaves more runs)"
        )


def reference_noise(speedup: float, lo: float, hi: float, min_gain: float) -> NoiseCheck:
    """Judge the closing reference against the first (see REFERENCE_STABLE_BAND)."""
    state: NoiseState
    if lo > 1 + min_gain or hi < 1 - min_gain:
        state = "load-changed"
    elif lo >= 1 / (1 + REFERENCE_STABLE_BAND) and hi <= 1 + REFERENCE_STABLE_BAND:
        state = "stable"
    else:
        state = "too-wide"
    return NoiseCheck(speedup=speedup, ci95=(lo, hi), state=state)


class FixSession(BaseModel):
    """fix.json in the baseline run folder."""

    schema_version: int = FIX_SCHEMA_VERSION
    baseline_run: str
    script: str
    argv: list[str] = Field(default_factory=list)
    start_ns: int
    end_ns: int | None = None
    tolerance: dict[str, float] = Field(default_factory=dict)
    baseline: StepSummary = Field(default_factory=StepSummary)
    candidates: list[Applicability] = Field(default_factory=list)
    trials: list[Trial] = Field(default_factory=list)
    accepted: list[str] = Field(default_factory=list, description="recipes in the final stack")
    reference_check: str = Field(
        default="", description="first vs closing reference run: did the machine's load move?"
    )
    reference: NoiseCheck | None = Field(
        default=None, description="the same check as numbers (absent in older sessions)"
    )
    apply: ApplyResult | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def applied(self) -> list[AppliedChange]:
        """The changes `--apply` made (or printed to be made by hand)."""
        return list(self.apply.changes) if self.apply else []
