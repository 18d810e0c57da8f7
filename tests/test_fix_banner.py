"""The fix banner: what the best measured change gives, read from fix.json as it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_synthetic import NOISE, fix_session

from dsprof.core.fix import ApplyResult, reference_noise
from dsprof.report.fix_view import fix_banner


def test_a_win_reads_before_after_with_its_interval() -> None:
    b = fix_banner(fix_session("20260101-120000-x-abcd"))
    assert b.outcome == "win"
    assert b.headline == "compile (combined): 10 ms → 5.56 ms per iteration (p50)"
    # the after figure's interval from the speed-up's: 10 ms / [1.88, 1.72]
    assert b.interval_text == "95 % interval 5.32 ms – 5.81 ms"
    assert b.speedup_text == "x1.80 [1.72, 1.88]" and b.drift_text.startswith("cos 0.99999")
    assert b.diff_label == "applied diff" and "+model.compile()" in b.diff
    assert b.command == ""  # applied already


def test_a_dry_run_diff_is_said_not_applied_and_the_apply_command_given() -> None:
    session = fix_session("20260101-120000-x-abcd")
    session.argv = ["--batch", "8"]
    session.apply = ApplyResult(script="infer.py", dry_run=True, diff="--- a\n+++ b\n")
    b = fix_banner(session)
    assert b.diff_label == "dry-run diff (not applied)"
    assert b.command == "dsprof fix --apply infer.py --batch 8"


def test_no_win_names_the_best_trial_tried() -> None:
    session = fix_session("20260101-120000-x-abcd")
    session.trials = [t for t in session.trials if not (t.verdict and t.verdict.accepted)]
    b = fix_banner(session)
    assert b.outcome == "no-win" and b.headline.startswith("no measurable win; best tried: ")


@pytest.mark.parametrize(
    ("ci", "state", "words"),
    [
        ((0.19, 3.18), "too-wide", "too wide to judge"),
        ((0.97, 1.05), "stable", "stable (within ±10%)"),
        ((1.20, 1.40), "load-changed", "load changed"),
        ((0.85, 1.02), "too-wide", "too wide to judge"),
    ],
    ids=["issue-19-interval", "narrow", "moved", "wider-than-the-band"],
)
def test_the_noise_check_never_calls_a_wide_interval_stable(
    ci: tuple[float, float], state: str, words: str
) -> None:
    check = reference_noise(1.0, ci[0], ci[1], 0.03)
    assert check.state == state and words in check.sentence
    if state != "stable":
        assert "stable" not in check.sentence


def test_the_banner_shows_the_sessions_noise_check() -> None:
    b = fix_banner(fix_session("20260101-120000-x-abcd"))
    assert b.noise_state == NOISE.state == "too-wide" and "[0.19, 3.18]" in b.noise_text


def test_markdown_shows_a_no_win_sessions_before_and_after(tmp_path: Path) -> None:
    from report_synthetic import make_run

    from dsprof.report.build import build_report
    from dsprof.report.markdown import render_markdown
    from dsprof.store.documents import read_fix_session, write_model
    from dsprof.store.layout import RunPaths
    from dsprof.store.run_store import load_run

    run_dir = make_run(tmp_path, fix=True)
    path = RunPaths(run_dir).fix_session
    session = read_fix_session(path)
    session.trials = [t for t in session.trials if not (t.verdict and t.verdict.accepted)]
    session.accepted = []
    write_model(path, session)
    md = render_markdown(build_report(load_run(run_dir)))
    section = md[md.index("#### Fix session: accepted none") :]
    line = next(ln for ln in section.splitlines() if "per iteration (p50)" in ln)
    assert line.startswith("no measurable win; best tried: ") and "→" in line
    assert "95 % interval" in line and "speed-up x" in line
    assert "before: the session's untraced reference runs" in section
    assert "Noise check: " in section and "too wide to judge" in section
