"""`dsprof fix --apply`: write the accepted recipes into the script, then measure the result.

Refuses a script with uncommitted git changes unless forced (the diff must be reviewable on its
own); keeps script.py.orig; writes atomically; runs the patched script under dsprof (no recipes,
untraced) and compares its steps with the session's reference run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from dsprof.core.child import CallSite
from dsprof.core.errors import UsageError
from dsprof.core.fix import ApplyResult
from dsprof.recipes import verdict as V
from dsprof.recipes.codemod import apply_changes, write_backup_and_script
from dsprof.recipes.registry import BY_NAME, get_recipe
from dsprof.recipes.session import FixRunner, _run, trial_dir
from dsprof.store.documents import write_model
from dsprof.store.run_store import load_run


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
    )
    result.changes, result.diff = mod.changes, mod.diff(original, script.name)
    if dry_run or mod.source == original:
        result.check_reason = "dry run: nothing written" if dry_run else "nothing to write"
        return _save(runner, result)
    result.backup = str(write_backup_and_script(script, mod.source))
    runner.progress("start", "patched script")
    d = trial_dir(baseline, "applied")
    check = _run(
        runner.opts,
        trace=False,
        analyze=False,
        run_dir=d,
        parent_run=baseline.paths.root.name,
        name="applied",
    )
    runner.progress("done", "patched script")
    result.check_run = str(d)
    if check.exit_code != 0:
        result.check_reason = (
            f"the patched script failed (exit {check.exit_code}); see {check.paths.stderr_log}"
        )
        return _save(runner, result)
    assert runner.reference is not None
    ref, new = runner.durations(*runner.references), runner.durations(load_run(d))
    if min(len(ref), len(new)) < V.MIN_STEPS:
        result.check_reason = "too few steps to confirm the gain"
        return _save(runner, result)
    speed = V.bootstrap_speedup(ref, new)
    result.check_speedup, result.check_ci95 = speed.speedup, (speed.lo, speed.hi)
    confirmed = speed.lo >= 1 + runner.opts.min_gain
    result.check_reason = (
        f"{'confirmed' if confirmed else 'NOT confirmed'}: patched script x{speed.speedup:.2f} "
        f"[{speed.lo:.2f}, {speed.hi:.2f}] against the original"
    )
    return _save(runner, result)


def _save(runner: FixRunner, result: ApplyResult) -> ApplyResult:
    assert runner.session is not None and runner.baseline is not None
    runner.session.apply = result
    write_model(runner.baseline.paths.fix_session, runner.session)
    return result
