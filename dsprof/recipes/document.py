"""The `dsprof fix --json` document: the session in the shape issue 4 asks for."""

from __future__ import annotations

import json
from typing import Any

from dsprof.core.fix import FixSession


def session_json(session: FixSession) -> dict[str, Any]:
    """The `dsprof fix --json` document."""
    b = session.baseline
    trials = []
    for t in session.trials:
        v = t.verdict
        d = v.drift if v else None
        trials.append(
            {
                "recipe": "+".join(t.recipes),
                "recipes": t.recipes,
                "combined": t.combined,
                "status": t.status,
                "accepted": bool(v and v.accepted),
                "outcome": v.outcome if v else t.status,
                "speedup": v.speedup if v else None,
                "ci95": list(v.ci95) if v and v.ci95 else None,
                "drift": {
                    "cosine": d.cosine if d else None,
                    "max_abs": d.max_abs if d else None,
                    "top1_agreement": d.top1_agreement if d else None,
                    "rel_l2": d.rel_l2 if d else None,
                    "allclose": d.allclose if d else None,
                    "deterministic": d.deterministic if d else None,
                },
                "peak_memory_change_bytes": v.peak_memory_change_bytes if v else None,
                "p50_ms": t.metrics.p50_ns / 1e6 if t.metrics.p50_ns else None,
                "p99_ms": t.metrics.p99_ns / 1e6 if t.metrics.p99_ns else None,
                "reason": v.reason if v else (t.error or ""),
                "run_dir": t.run_dir,
            }
        )
    return {
        "baseline": {
            "run": session.baseline_run,
            "p50_ms": b.p50_ns / 1e6 if b.p50_ns else None,
            "p99_ms": b.p99_ns / 1e6 if b.p99_ns else None,
            "throughput_per_s": b.throughput_per_s,
            "peak_rss_bytes": b.peak_rss_bytes,
            "steps_measured": b.steps_measured,
        },
        "candidates": [c.model_dump() for c in session.candidates],
        "trials": trials,
        "accepted": session.accepted,
        "reference_check": session.reference_check,
        "applied": [c.model_dump() for c in session.apply.changes] if session.apply else [],
        "apply": session.apply.model_dump(exclude={"changes"}) if session.apply else None,
    }


def dumps(session: FixSession) -> str:
    """session_json as indented JSON text."""
    return json.dumps(session_json(session), indent=2)
