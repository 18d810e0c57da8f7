"""`dsprof fix --apply`: write the accepted recipes into the script, then re-verify the result.

Refuses a script with uncommitted git changes unless forced (the diff must be reviewable on its
own); keeps script.py.orig; writes atomically; runs the patched script under dsprof (no recipes,
untraced) and checks it against the session's reference runs: it must run, give the baseline's
outputs within the recipes' tolerance, and not be slower, per call or over the whole run. When
the check fails, the original script is put back (and a backup this apply made is removed):
`--apply` never leaves a broken or slower script behind, and the CLI exits with
EXIT_APPLY_FAILED naming the reason (issue 17).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from dsprof.core.child import CallSite
from dsprof.core.errors import UsageError
from dsprof.core.fix import ApplyResult, RiskClass
from dsprof.recipes import drift as D
from dsprof.recipes import verdict as V
from dsprof.recipes.codemod import Handle, apply_changes, write_backup_and_script
from dsprof.recipes.registry import BY_NAME, get_recipe
from dsprof.recipes.session import FixRunner, _run, trial_dir
from dsprof.store.documents import write_model, write_text_atomic
from dsprof.store.run_store import RunData, load_run

# `dsprof fix --apply` exits with this when the patched script failed its check and the
# original was restored (2 is a usage error, 3 a failed SLO)
EXIT_APPLY_FAILED = 4


def uncommitted(script: Path) -> bool:
    """True when git knows the script and it has uncommitted changes (False outside a repo)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", script.name],
            cwd=script.parent,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and bool(out.stdout.strip())


def script_handles(baseline: RunData, model_class: str | None, script: Path) -> list[Handle]:
    """Where the script's own frames reached the model at its first call (child.json)."""
    seen = baseline.child.model_seen(model_class)
    if seen is None:
        return []
    target = script.resolve()
    return [
        Handle(h.line, h.var, h.expr)
        for h in seen.handles
        if h.file and h.expr and Path(h.file).resolve() == target
    ]


def apply_accepted(runner: FixRunner, *, dry_run: bool = False, force: bool = False) -> ApplyResult:
    """Patch the script with the session's accepted recipes; fix.json records what happened."""
    session, baseline = runner.session, runner.baseline
    assert session is not None and baseline is not None
    if runner.opts.module:
        raise UsageError("--apply needs a script path, not -m module", path=runner.opts.target)
    script = Path(runner.opts.target)
    names = sorted(session.accepted, key=lambda n: BY_NAME[n].order)
    original = script.read_text(encoding="utf-8")
    result = ApplyResult(script=str(script), dry_run=dry_run)
    if not names:
        result.check_reason = "no recipe was accepted: nothing to apply"
        return _save(runner, result)
    if not dry_run and not force and uncommitted(script):
        raise UsageError("has uncommitted git changes; commit them or pass --force", path=script)
    site = baseline.child.call_site or CallSite()
    same_file = bool(site.file) and Path(site.file or "").resolve() == script.resolve()
    mod = apply_changes(
        original,
        [(n, get_recipe(n).codemod(baseline)) for n in names],
        path=script.name,
        call_line=site.line,
        call_file_matches=same_file,
        model_class=runner.model_class,
        handles=script_handles(baseline, runner.model_class, script),
    )
    result.changes, result.diff = mod.changes, mod.diff(original, script.name)
    if dry_run or mod.source == original:
        result.check_reason = "dry run: nothing written" if dry_run else "nothing to write"
        return _save(runner, result)
    had_backup = script.with_name(script.name + ".orig").exists()
    result.backup = str(write_backup_and_script(script, mod.source))
    runner.progress("start", "patched script")
    d = trial_dir(baseline, "applied")
    result.check_run = str(d)
    try:
        check = _run(
            runner.opts,
            trace=False,
            analyze=False,
            run_dir=d,
            parent_run=baseline.paths.root.name,
            name="applied",
        )
        runner.progress("done", "patched script")
        if check.exit_code != 0:
            problem = (
                f"the patched script failed (exit {check.exit_code}); see {check.paths.stderr_log}"
            )
        else:
            problem = _check(runner, result, load_run(d), names)
    except BaseException:
        # Ctrl-C or an error while checking: the script is not left patched and unverified
        _put_back(script, original, had_backup, result)
        raise
    if problem:
        return _restore(runner, result, script, original, had_backup, problem)
    result.check_ok = True
    return _save(runner, result)


def _check(runner: FixRunner, result: ApplyResult, run: RunData, names: list[str]) -> str:
    """Compare the patched script's run with the references; the reason to restore, or ''."""
    assert runner.baseline is not None and runner.session is not None
    risks = {get_recipe(n).risk for n in names}
    drift = D.compare_outputs(
        runner.baseline.paths.outputs_dir, run.paths.outputs_dir, runner.model_class
    )
    risk: RiskClass = "approximate" if "approximate" in risks else "exact"
    if "deterministic" in risks:
        # eval-mode: the baseline's outputs were drawn with dropout on; what must hold now is
        # that equal inputs give equal outputs
        risk, drift.deterministic = "deterministic", D.outputs_deterministic(run.paths.outputs_dir)
    ok, drift_text = V.drift_ok(risk, drift, runner.session.tolerance)
    if not ok:
        return f"the patched script's outputs are not the baseline's: {drift_text}"
    ref, new = runner.durations(*runner.references), runner.durations(run)
    if min(len(ref), len(new)) < V.MIN_STEPS:
        result.check_reason = f"too few steps to confirm the gain; {drift_text}"
        return ""
    speed = V.bootstrap_speedup(ref, new)
    result.check_speedup, result.check_ci95 = speed.speedup, (speed.lo, speed.hi)
    whole = V.whole_run([runner.loop(r) for r in runner.references], [runner.loop(run)])
    text = f"patched script x{speed.speedup:.2f} [{speed.lo:.2f}, {speed.hi:.2f}] per call"
    if whole is not None:
        result.check_whole_run_speedup = whole.speedup
        text += f", {V.whole_run_text(whole)}"
    if speed.hi < 1:
        return f"the patched script is slower: {text}"
    if whole is not None and not whole.cut_short and whole.ci95 and whole.ci95[1] < 1:
        return f"the patched script is slower over its whole run: {text}"
    confirmed = speed.lo >= 1 + runner.opts.min_gain
    result.check_reason = (
        f"{'confirmed' if confirmed else 'NOT confirmed'}: {text} against the original; "
        f"{drift_text}"
    )
    return ""


def _restore(
    runner: FixRunner,
    result: ApplyResult,
    script: Path,
    original: str,
    had_backup: bool,
    reason: str,
) -> ApplyResult:
    """Put the original script back after a failed check; fix.json says why."""
    _put_back(script, original, had_backup, result)
    result.check_ok, result.restored = False, True
    result.check_reason = f"{reason}; the original script was restored"
    return _save(runner, result)


def _put_back(script: Path, original: str, had_backup: bool, result: ApplyResult) -> None:
    """Write the original text back, keeping the file's mode; drop the backup this apply made."""
    mode = script.stat().st_mode
    write_text_atomic(script, original)
    script.chmod(mode)
    if not had_backup and result.backup:
        Path(result.backup).unlink(missing_ok=True)
        result.backup = None


def _save(runner: FixRunner, result: ApplyResult) -> ApplyResult:
    assert runner.session is not None and runner.baseline is not None
    runner.session.apply = result
    write_model(runner.baseline.paths.fix_session, runner.session)
    return result
