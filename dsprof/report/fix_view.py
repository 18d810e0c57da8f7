"""A `dsprof fix` session (fix.json, dsprof.core.fix.FixSession) flattened for reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dsprof.core.errors import RunFolderError
from dsprof.report.view_model import FixView, format_bytes, format_ns

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
