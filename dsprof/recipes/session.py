"""The fix loop: baseline, findings, matching recipes, trials, verdicts, greedy stacking, fix.json.

baseline run (traced, analysed)  ->  candidates (registry x findings, or --recipe)
reference run (untraced, no recipes): the step times every trial is compared with
one trial run per recipe under <baseline>/trials/, untraced, outputs captured
verdict per trial (bootstrap speedup vs the reference, drift vs the baseline's outputs)
accepted recipes that stack: combined greedily, each combination measured again
fix.json in the baseline folder; `apply.py` writes the winners into the script
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dsprof.core.errors import UsageError
from dsprof.core.fix import (
    Applicability,
    FixSession,
    RiskClass,
    Trial,
    Verdict,
    reference_noise,
)
from dsprof.core.manifest import StepSummary
from dsprof.recipes import drift as D
from dsprof.recipes import verdict as V
from dsprof.recipes.base import (
    concurrency_reason,
    concurrent_threads,
    finding_categories,
    uses_cuda,
)
from dsprof.recipes.batching import batching_verdict
from dsprof.recipes.registry import BY_NAME, RECIPES, get_recipe
from dsprof.runner.stdin import stdin_is_fed
from dsprof.store.documents import write_model
from dsprof.store.layout import DEFAULT_RUNS_DIR, RunPaths
from dsprof.store.run_store import RunData, load_run

Progress = Callable[[str, str], None]  # (event, label): "start"/"done" of each run


@dataclass
class FixOptions:
    """What `dsprof fix` was asked to do (the CLI's options)."""

    target: str
    args: list[str] = field(default_factory=list)
    module: bool = False
    out: Path = DEFAULT_RUNS_DIR
    recipes: list[str] = field(default_factory=list)  # --recipe: exactly these are tried
    tolerance: dict[str, float] = field(default_factory=dict)
    min_gain: float = V.MIN_GAIN
    warmup: int = 2
    repeats: int = 1  # runs per trial and of the reference, interleaved, steps pooled
    capture_steps: int = 3
    capture_step_bytes: int | None = None
    capture_run_bytes: int | None = None
    max_steps: int | None = None
    recipe_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # what the script read from stdin in the baseline run, replayed to every later run
    stdin_replay: Path | None = None


def _run(opts: FixOptions, *, analyze: bool = False, **kw: Any) -> Any:
    """One run of the script (baseline, reference or trial); analyse it when asked."""
    from dsprof.analyzers import write_findings
    from dsprof.runner.launch import RunRequest, run_script

    req = RunRequest(
        target=opts.target,
        args=list(opts.args),
        module=opts.module,
        out=opts.out,
        capture_steps=opts.capture_steps,
        capture_step_bytes=opts.capture_step_bytes,
        capture_run_bytes=opts.capture_run_bytes,
        echo=False,
        progress=False,
        max_steps=opts.max_steps,
        stdin_from=opts.stdin_replay,
        **kw,
    )
    result = run_script(req)
    write_findings(result.paths.root, analyze=analyze)
    return result


def trial_dir(baseline: RunData, label: str) -> Path:
    """A new run-folder path under <baseline>/trials/ named like any run folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in label)[:48]
    return baseline.paths.trials_dir / f"{stamp}-{slug}-{secrets.token_hex(2)}"


def candidates(run: RunData, forced: list[str]) -> list[Applicability]:
    """Every registered recipe with whether it applies here and why; forced ones flagged."""
    for name in forced:
        get_recipe(name)  # a UsageError naming the known ids
    cats = finding_categories(run)
    named = {r for f in (run.findings.findings if run.findings else []) for r in f.recipes}
    out = []
    concurrent = concurrent_threads(run) > 0
    for cls in RECIPES:
        recipe = cls()
        applies, why = recipe.applicable(run)
        if applies and concurrent and not cls.concurrent_calls:
            applies, why = False, concurrency_reason(run)
        addressed = sorted(set(cls.addresses) & cats)
        if applies and not forced and not addressed and cls.name not in named:
            applies, why = False, f"no finding it addresses ({', '.join(cls.addresses)})"
        out.append(
            Applicability(
                recipe=cls.name,
                applies=applies,
                reason=why,
                risk=cls.risk,
                findings=addressed,
                forced=cls.name in forced,
            )
        )
    return out


def to_try(cands: list[Applicability], forced: list[str], run: RunData) -> list[str]:
    """Forced recipes that can change this workload, else those that apply and address a
    finding. A forced recipe that cannot apply (a GPU recipe on a CPU run, batching on stateful
    decode calls, int8 under the script's own autocast) says why instead of running."""
    if forced:
        applies = {c.recipe: c.applies for c in cands}
        concurrent = concurrent_threads(run) > 0
        return [
            n
            for n in forced
            if applies.get(n, True)
            and not (BY_NAME[n].needs_gpu and not uses_cuda(run))
            and not (concurrent and not BY_NAME[n].concurrent_calls)
        ]
    return [c.recipe for c in cands if c.applies]


class FixRunner:
    """One fix session over a script; see the module docstring."""

    def __init__(self, opts: FixOptions, progress: Progress | None = None) -> None:
        self.opts = opts
        self.progress = progress or (lambda event, label: None)
        self.baseline: RunData | None = None
        self.references: list[RunData] = []
        self.session: FixSession | None = None

    def run(self) -> FixSession:
        """The whole session; fix.json is written to the baseline folder at the end."""
        opts = self.opts
        self.progress("start", "baseline")
        record = stdin_is_fed() and opts.stdin_replay is None
        result = _run(opts, trace=True, analyze=True, record_stdin=record)
        if record:
            opts.stdin_replay = result.paths.stdin_log
        self.progress("done", "baseline")
        if result.exit_code != 0:
            raise UsageError(
                f"the script failed in the baseline run (exit {result.exit_code}); "
                f"see {result.paths.stderr_log}",
                path=opts.target,
            )
        base = self.baseline = load_run(result.paths.root)
        session = self.session = FixSession(
            baseline_run=str(result.paths.root),
            script=opts.target,
            argv=list(opts.args),
            start_ns=time.time_ns(),
            tolerance={"cosine": V.DEFAULT_COSINE, "top1": V.DEFAULT_TOP1, **opts.tolerance},
        )
        session.candidates = candidates(base, opts.recipes)
        names = to_try(session.candidates, opts.recipes, base)
        for c in session.candidates:
            if c.forced and c.recipe not in names:
                session.trials.append(
                    Trial(trial_id=c.recipe, recipes=[c.recipe], status="skipped", error=c.reason)
                )
        if names:
            # interleaved (reference, each trial; reference, each trial; ...) so that load
            # changing on the machine over time falls on the reference and the trials alike
            runs: dict[str, list[Any]] = {n: [] for n in names}
            for _ in range(max(1, opts.repeats)):
                self.references.append(self._reference())
                for name in names:
                    runs[name].append(self._trial_run([name]))
            # a closing reference: all trials are compared with the references pooled, and
            # when the machine's load moved during the session the two disagree and say so
            self.references.append(self._reference())
            session.reference_check = self._reference_check()
            session.baseline = self._metrics(self.references)
            for name in names:
                session.trials.append(self._make_trial([name], runs[name]))
            session.accepted = self.stack()
        session.end_ns = time.time_ns()
        write_model(base.paths.fix_session, session)
        return session

    def _reference(self) -> RunData:
        assert self.baseline is not None
        self.progress("start", "reference")
        d = trial_dir(self.baseline, "reference")
        result = _run(
            self.opts,
            trace=False,
            analyze=False,
            run_dir=d,
            parent_run=self.baseline.paths.root.name,
            name="reference",
        )
        self.progress("done", "reference")
        if result.exit_code != 0:
            raise UsageError(
                f"the untraced reference run failed; see {result.paths.stderr_log}",
                path=self.opts.target,
            )
        return load_run(result.paths.root)

    def _reference_check(self) -> str:
        first, last = self.durations(self.references[0]), self.durations(self.references[-1])
        if min(len(first), len(last)) < V.MIN_STEPS:
            return "too few steps to compare the first and the closing reference run"
        s = V.bootstrap_speedup(first, last)
        check = reference_noise(s.speedup, s.lo, s.hi, self.opts.min_gain)
        if self.session is not None:
            self.session.reference = check
        return check.sentence

    @property
    def reference(self) -> RunData | None:
        """The first reference run (its outputs and peaks stand for all of them)."""
        return self.references[0] if self.references else None

    def _metrics(self, runs: list[RunData]) -> StepSummary:
        pooled = [V.measured_durations(r.steps, self.opts.warmup, self.model_class) for r in runs]
        d = np.concatenate([p[0] for p in pooled]) if pooled else np.array([], dtype=np.int64)
        summary = runs[0].manifest.summary if runs and runs[0].manifest else None
        return V.metrics_of(d, sum(p[1] for p in pooled), summary)

    @property
    def model_class(self) -> str | None:
        """The baseline's main root module: trials are timed on the same module's steps."""
        return self.baseline.facts.main_module if self.baseline else None

    def durations(self, *runs: RunData) -> Any:
        """Measured step durations of runs (pooled), on the baseline's model only."""
        parts = [V.measured_durations(r.steps, self.opts.warmup, self.model_class)[0] for r in runs]
        return np.concatenate(parts) if parts else np.array([], dtype=np.int64)

    def trial(self, names: list[str], combined: bool = False) -> Trial:
        """Run the script with `names` applied (--repeats times) and judge it."""
        runs = [self._trial_run(names) for _ in range(max(1, self.opts.repeats))]
        return self._make_trial(names, runs, combined)

    def _trial_run(self, names: list[str]) -> tuple[Path, int, RunData]:
        assert self.baseline is not None
        label = "+".join(names)
        d = trial_dir(self.baseline, label)
        options = {
            n: {**get_recipe(n).options(self.baseline), **self.opts.recipe_options.get(n, {})}
            for n in names
        }
        if "batching" in names:
            options["batching"]["out"] = str(RunPaths(d).batching_result)
        env: dict[str, str] = {}
        for n in names:
            env.update(get_recipe(n).env(options[n]))
        self.progress("start", label)
        result = _run(
            self.opts,
            trace=False,
            analyze=False,
            run_dir=d,
            recipes=names,
            recipe_options=options,
            env=env,
            parent_run=self.baseline.paths.root.name,
            name=label,
        )
        self.progress("done", label)
        return d, result.exit_code, load_run(result.paths.root)

    def _make_trial(
        self, names: list[str], runs: list[tuple[Path, int, RunData]], combined: bool = False
    ) -> Trial:
        assert self.baseline is not None
        root = self.baseline.paths.root
        d, _, run = runs[0]
        trial = Trial(
            trial_id="+".join(names),
            recipes=names,
            run_dir=str(d.relative_to(root)),
            run_id=d.name,
            repeat_run_dirs=[str(r[0].relative_to(root)) for r in runs[1:]],
            combined=combined,
            recipe_status=dict(run.child.recipes),
        )
        trial.metrics = self._metrics([r[2] for r in runs])
        for _, code, r in runs:
            if code != 0 or (r.manifest and r.manifest.status == "failed"):
                trial.status = "failed"
                trial.error = _failure(r, code)
                trial.verdict = Verdict(
                    accepted=False, outcome="failed", reason=f"trial failed: {trial.error}"
                )
                return trial
        trial.verdict = self._judge(names, [r[2] for r in runs])
        return trial

    def _judge(self, names: list[str], runs: list[RunData]) -> Verdict:
        assert self.baseline is not None and self.reference is not None and self.session
        run = runs[0]
        untouched = unchanged(run, names)
        if names == ["batching"] and untouched:
            return Verdict(accepted=False, outcome="unchanged", reason=untouched)
        if names == ["batching"]:
            return batching_verdict(
                run.paths.batching_result, self.session.tolerance, self.opts.min_gain
            )
        risks = {get_recipe(n).risk for n in names}
        risk: RiskClass = (
            "approximate"
            if "approximate" in risks
            else "deterministic"
            if "deterministic" in risks
            else "exact"
        )
        base_d, trial_d = self.durations(*self.references), self.durations(*runs)
        speed = V.bootstrap_speedup(base_d, trial_d) if len(base_d) and len(trial_d) else None
        drift = D.compare_outputs(
            self.baseline.paths.outputs_dir, run.paths.outputs_dir, self.model_class
        )
        if risk == "deterministic":
            drift.deterministic = D.outputs_deterministic(run.paths.outputs_dir)
        change, basis = memory_change(self.reference, run)
        counters = compile_counters(run)
        verdict = V.judge(
            risk,
            speed,
            drift,
            tolerance=self.session.tolerance,
            min_gain=self.opts.min_gain,
            memory_change=change,
            whole=V.whole_run(
                [self.loop(r) for r in self.references],
                [self.loop(r) for r in runs],
                measured_one_time_ns=counters.get("compile_s", 0.0) * 1e9,
            ),
        )
        verdict.memory_basis = basis
        verdict.compile = counters
        if untouched:
            # nothing was changed, so whatever the timer says is noise: never accepted
            verdict.accepted, verdict.outcome = False, "unchanged"
            verdict.reason = f"{untouched}: the trial ran the script as it was; {verdict.reason}"
        if len(names) > 1 and verdict.outcome != "win":
            # a combination exists to be faster: eval-mode's "accepted on determinism alone"
            # does not carry over to a stack that is not a measured win
            verdict.accepted = False
        return verdict

    def loop(self, run: RunData) -> V.RunLoop:
        """A run's model loop, timed on the baseline's model (for the whole-run figures)."""
        return V.run_loop(
            run.steps,
            self.opts.warmup,
            self.model_class,
            max_steps=self.opts.max_steps,
            calls=run.child.steps_seen or None,
        )

    def stack(self) -> list[str]:
        """Greedy: start from the fastest accepted recipe, add each next one that stays accepted
        and is faster together; each combination is a trial of its own."""
        assert self.session is not None
        wins = sorted(
            (
                t
                for t in self.session.trials
                if t.verdict
                and t.verdict.accepted
                and len(t.recipes) == 1
                and t.recipes != ["batching"]
            ),
            key=lambda t: -paid_speedup(t.verdict),
        )
        if not wins:
            return ["batching"] if self._accepted("batching") else []
        stack = list(wins[0].recipes)
        best = paid_speedup(wins[0].verdict)
        for t in wins[1:]:
            name = t.recipes[0]
            if any(name in BY_NAME[s].conflicts or s in BY_NAME[name].conflicts for s in stack):
                continue
            combo = self.trial(
                sorted([*stack, name], key=lambda n: BY_NAME[n].order), combined=True
            )
            self.session.trials.append(combo)
            if combo.verdict and combo.verdict.accepted and paid_speedup(combo.verdict) >= best:
                stack, best = combo.recipes, paid_speedup(combo.verdict)
        return stack + (["batching"] if self._accepted("batching") else [])

    def _accepted(self, name: str) -> bool:
        assert self.session is not None
        return any(
            t.recipes == [name] and t.verdict and t.verdict.accepted for t in self.session.trials
        )


def paid_speedup(v: Verdict | None) -> float:
    """The speed-up the user gets: the whole run's when known (one-time costs included), else
    the steady per-call one."""
    if v is None:
        return 0.0
    if v.whole_run is not None and not v.whole_run.cut_short:
        return v.whole_run.speedup
    return v.speedup or 0.0


def unchanged(run: RunData, names: list[str]) -> str:
    """Why the trial changed nothing ('' when it did): every recipe reported `changed: false`."""
    reasons = []
    for name in names:
        st = run.child.recipes.get(name)
        if not isinstance(st, dict) or st.get("changed", True) is not False:
            return ""
        reasons.append(f"{name} changed nothing ({st.get('unchanged') or 'nothing to change'})")
    return "; ".join(reasons)


def compile_counters(run: RunData) -> dict[str, float]:
    """torch.compile's counters the compile recipes recorded in the trial (graphs, recompiles,
    compile_s); {} for other trials."""
    out: dict[str, float] = {}
    for st in run.child.recipes.values():
        if isinstance(st, dict) and isinstance(st.get("dynamo"), dict):
            out.update({k: float(v) for k, v in st["dynamo"].items()})
    return out


def memory_change(reference: RunData, run: RunData) -> tuple[int | None, str]:
    """Peak memory of the trial less the reference's, and what was compared.

    On a GPU run the caching allocator's peak reserved bytes (cuda_memory.parquet: what
    alloc-conf and the precision recipes change and what an out-of-memory error is about);
    otherwise the process's peak resident set.
    """
    ref_cuda, cuda = _peak_reserved(reference), _peak_reserved(run)
    if ref_cuda is not None and cuda is not None:
        return cuda - ref_cuda, "cuda-reserved"
    ref = reference.manifest.summary.peak_rss_bytes if reference.manifest else None
    peak = run.manifest.summary.peak_rss_bytes if run.manifest else None
    if ref is None or peak is None:
        return None, ""
    return peak - ref, "rss"


def _peak_reserved(run: RunData) -> int | None:
    mem = run.cuda_memory
    if mem is None or len(mem) == 0:
        return None
    for col in ("reserved_peak_bytes", "reserved_bytes"):
        if col in mem and mem[col].notna().any():
            per_device = mem.groupby("device")[col].max() if "device" in mem else mem[col]
            return int(per_device.sum()) if "device" in mem else int(per_device.max())
    return None


def _failure(run: RunData, exit_code: int) -> str:
    """The trial's error in one line: the recipe status, the manifest error, or stderr's tail."""
    for name, st in run.child.recipes.items():
        if isinstance(st, dict) and st.get("status") == "failed":
            return f"recipe {name}: {st.get('error')}"
    if run.manifest and run.manifest.error:
        return run.manifest.error.strip().splitlines()[-1][:300]
    if run.paths.stderr_log.is_file():
        lines = [
            ln for ln in run.paths.stderr_log.read_text(errors="replace").splitlines() if ln.strip()
        ]
        if lines:
            return lines[-1][:300]
    return f"exit code {exit_code}"
