"""fix.json and `dsprof fix --json` are one document (FixSession): the verdict at a glance
(recipe, accepted, speedup, ci95, drift, reason) is derived from each trial's verdict."""

from __future__ import annotations

import json
from pathlib import Path

from dsprof.core.fix import AppliedChange, ApplyResult, Drift, FixSession, Trial, Verdict
from dsprof.core.manifest import StepSummary
from dsprof.store.documents import read_fix_session, write_model


def _session() -> FixSession:
    win = Trial(
        trial_id="int8-dynamic",
        recipes=["int8-dynamic"],
        metrics=StepSummary(count=12, steps_excluded=2, p50_ns=40_000_000),
        verdict=Verdict(
            accepted=True,
            outcome="win",
            speedup=2.3,
            ci95=(2.1, 2.5),
            drift=Drift(tensors_compared=3, cosine=0.997),
            reason="x2.30 [2.10, 2.50]; cosine 0.99700",
        ),
    )
    failed = Trial(
        trial_id="compile+bf16", recipes=["compile", "bf16"], status="failed", error="boom"
    )
    return FixSession(
        baseline_run="runs/base",
        script="infer.py",
        start_ns=1,
        baseline=StepSummary(count=12, steps_excluded=2, p50_ns=92_000_000),
        trials=[win, failed],
        accepted=["int8-dynamic"],
        apply=ApplyResult(
            script="infer.py",
            changes=[
                AppliedChange(recipe="int8-dynamic", file="infer.py", placement="top", code="x")
            ],
        ),
    )


def test_the_document_carries_each_verdict_at_a_glance() -> None:
    doc = json.loads(_session().model_dump_json())
    win, failed = doc["trials"]
    assert (win["recipe"], win["accepted"], win["speedup"], win["ci95"]) == (
        "int8-dynamic",
        True,
        2.3,
        [2.1, 2.5],
    )
    assert win["drift"]["cosine"] == 0.997 and win["reason"].startswith("x2.30")
    assert (failed["recipe"], failed["outcome"], failed["reason"]) == (
        "compile+bf16",
        "failed",
        "boom",
    )
    assert failed["accepted"] is False and failed["drift"] is None
    assert doc["applied"][0]["recipe"] == "int8-dynamic"
    assert doc["baseline"]["steps_measured"] == 10


def test_fix_json_reads_back_to_the_same_session(tmp_path: Path) -> None:
    session = _session()
    write_model(tmp_path / "fix.json", session)
    back = read_fix_session(tmp_path / "fix.json")
    assert back == session
    assert back.model_dump_json() == session.model_dump_json()


def test_fix_json_from_before_step_stats_reads(tmp_path: Path) -> None:
    old = {
        "schema_version": 1,
        "baseline_run": "runs/base",
        "script": "infer.py",
        "start_ns": 1,
        "baseline": {"steps_measured": 10, "steps_excluded": 2, "p50_ns": 5},
        "trials": [{"trial_id": "t", "recipes": ["threads"], "metrics": {"steps_measured": 9}}],
    }
    (tmp_path / "fix.json").write_text(json.dumps(old))
    session = read_fix_session(tmp_path / "fix.json")
    assert session.baseline.steps_measured == 10 and session.trials[0].metrics.count == 9
