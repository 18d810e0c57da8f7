"""A `dsprof fix` session (fix.json, dsprof.core.fix.FixSession) flattened for reports."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from dsprof.core.errors import RunFolderError
from dsprof.report.view_model import FixBanner, FixView, format_bytes, format_ns

if TYPE_CHECKING:
    from dsprof.core.fix import FixSession, Trial
    from dsprof.store.run_store import RunData


def load_fix_view(run: RunData) -> FixView:
    """The fix session stored in the run folder, or an empty view saying why there is none."""
    from dsprof.store.documents import read_fix_session

    path = run.paths.fix_session
    if not path.is_file():
        return FixView(state="no fix session (run `dsprof fix` on the script)")
    try:
        session = read_fix_session(path)
    except RunFolderError as e:
        return FixView(state=str(e))
    return fix_view(session)


def trial_name(trial: Trial) -> str:
    """A trial's display name: its recipes joined with '+', marked when it is the final stack."""
    name = "+".join(trial.recipes) or trial.trial_id
    return f"{name} (combined)" if trial.combined else name


def _trial_row(trial: Trial) -> dict[str, Any]:
    v = trial.verdict
    drift = v.drift if v is not None else None
    m = trial.metrics
    return {
        "name": trial_name(trial),
        "trial_id": trial.trial_id,
        "run_id": trial.run_id,
        "run_dir": trial.run_dir,
        "status": trial.status,
        "outcome": v.outcome if v is not None else trial.status,
        "accepted": bool(v is not None and v.accepted),
        "speedup": round(v.speedup, 6) if v is not None and v.speedup is not None else None,
        "ci_low": round(v.ci95[0], 6) if v is not None and v.ci95 is not None else None,
        "ci_high": round(v.ci95[1], 6) if v is not None and v.ci95 is not None else None,
        "speedup_text": _speedup_text(v.speedup if v else None, v.ci95 if v else None),
        "p50_text": format_ns(m.p50_ns),
        "p99_text": format_ns(m.p99_ns),
        "memory_change_text": (
            format_bytes(v.peak_memory_change_bytes)
            if v is not None and v.peak_memory_change_bytes is not None
            else "n/a"
        ),
        "drift_text": _drift_text(drift),
        "reason": (v.reason if v is not None else "") or (trial.error or ""),
    }


def _speedup_text(speedup: float | None, ci: tuple[float, float] | None) -> str:
    if speedup is None:
        return "n/a"
    text = f"x{speedup:.2f}"
    return f"{text} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci is not None else text


def _drift_text(drift: Any) -> str:
    if drift is None or not drift.tensors_compared:
        return "n/a" if drift is None else (drift.note or "n/a")
    parts = []
    if drift.cosine is not None:
        parts.append(f"cos {drift.cosine:.5f}")
    if drift.max_abs is not None:
        parts.append(f"max|d| {drift.max_abs:.3g}")
    if drift.top1_agreement is not None:
        parts.append(f"top1 {drift.top1_agreement:.0%}")
    return ", ".join(parts) or "compared"


def _after(session: FixSession) -> Trial | None:
    """The trial the banner reports: the final stack when it was accepted, else the accepted
    trial with the best speed-up, else (no win) the fastest trial measured."""
    measured = [t for t in session.trials if t.verdict is not None and t.verdict.speedup]
    accepted = [t for t in measured if t.verdict is not None and t.verdict.accepted]
    combined = [t for t in accepted if t.combined]
    pool = combined or accepted or measured
    return max(pool, key=lambda t: t.verdict.speedup or 0.0) if pool else None  # type: ignore[union-attr]


def fix_banner(session: FixSession) -> FixBanner:
    """Before → after in ms with the interval, drift, memory, the diff and the noise check."""
    trial = _after(session)
    before = session.baseline.p50_ns
    noise_state = session.reference.state if session.reference is not None else ""
    diff, diff_label = "", ""
    if session.apply is not None and session.apply.diff:
        diff = session.apply.diff
        diff_label = "dry-run diff (not applied)" if session.apply.dry_run else "applied diff"
    banner = FixBanner(
        outcome="no-win",
        headline="no trial was measured",
        noise_state=noise_state,
        noise_text=session.reference_check,
        diff=diff,
        diff_label=diff_label,
    )
    if trial is None or trial.verdict is None or before is None:
        return banner
    v = trial.verdict
    speedup = v.speedup or 1.0
    after = trial.metrics.p50_ns or int(before / speedup)
    name = trial_name(trial)
    accepted = bool(v.accepted)
    banner.outcome = "win" if accepted else "no-win"
    verb = "" if accepted else "no measurable win; best tried: "
    banner.headline = f"{verb}{name}: {format_ns(before)} → {format_ns(after)} per iteration (p50)"
    banner.speedup_text = _speedup_text(v.speedup, v.ci95)
    if v.ci95 is not None and v.ci95[0] > 0:
        # the after figure's interval, from the speed-up's: before / [hi, lo]
        banner.interval_text = (
            f"95 % interval {format_ns(before / v.ci95[1])} – {format_ns(before / v.ci95[0])}"
        )
    banner.drift_text = _drift_text(v.drift)
    if v.peak_memory_change_bytes is not None:
        sign = "+" if v.peak_memory_change_bytes > 0 else ""
        banner.memory_text = f"peak memory {sign}{format_bytes(v.peak_memory_change_bytes)}"
    if accepted and (session.apply is None or session.apply.dry_run):
        argv = " ".join(shlex.quote(a) for a in [session.script, *session.argv])
        banner.command = f"dsprof fix --apply {argv}"
    return banner


def fix_view(session: FixSession) -> FixView:
    """The rows the report and dashboard show for one session."""
    notes: list[str] = []
    diff = ""
    if session.apply is not None:
        a = session.apply
        diff = a.diff
        notes.append(f"{'would patch' if a.dry_run else 'patched'} {a.script}")
        if a.backup:
            notes.append(f"backup: {a.backup}")
        if a.check_speedup is not None:
            notes.append(
                f"re-run of the patched script: {_speedup_text(a.check_speedup, a.check_ci95)}"
            )
        if a.check_reason:
            notes.append(a.check_reason)
        notes.extend(
            f"manual change for {c.recipe}: {c.reason or c.code}" for c in a.changes if c.manual
        )
    return FixView(
        available=True,
        banner=fix_banner(session),
        script=session.script,
        baseline_p50_text=format_ns(session.baseline.p50_ns),
        accepted=list(session.accepted),
        trials=[_trial_row(t) for t in session.trials],
        candidates=[
            {"recipe": c.recipe, "applies": c.applies, "risk": c.risk, "reason": c.reason}
            for c in session.candidates
        ],
        applied_diff=diff,
        apply_notes=notes,
    )
