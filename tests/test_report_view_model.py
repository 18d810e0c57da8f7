"""The report's view-model: golden files on a synthetic run, and the rules behind its numbers.

Regenerate the golden files after an intended change with DSPROF_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from report_synthetic import EVIL_MODULE, EVIL_OP, make_run

from dsprof.core.manifest import StepSummary
from dsprof.report.build import build_report
from dsprof.report.markdown import render_markdown
from dsprof.report.view_model import format_bytes, format_ns, run_numbers
from dsprof.store import load_run
from dsprof.store.documents import write_model

GOLDEN = Path(__file__).parent / "golden"


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DSPROF_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}: run with DSPROF_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "kwargs",
    [{"fix": True, "ranks": 2}, {"gpu": False, "findings": False}],
    ids=["gpu-fix-ranks", "cpu-not-analysed"],
)
def test_view_model_matches_golden(tmp_path: Path, kwargs: dict) -> None:
    run = load_run(make_run(tmp_path, **kwargs))
    report = build_report(run)
    view = report.view.model_dump(mode="json")
    name = "-".join(f"{k}{v}" for k, v in sorted(kwargs.items()))
    _check_golden(f"view_{name}.json", json.dumps(view, indent=1, sort_keys=True) + "\n")
    _check_golden(f"report_{name}.md", render_markdown(report))


def test_view_model_content(tmp_path: Path) -> None:
    view = build_report(load_run(make_run(tmp_path, fix=True, ranks=2))).view
    assert [f.category for f in view.findings] == ["gpu-idle", "small-batch"]  # by impact
    assert view.findings[0].evidence[1].value == EVIL_OP
    assert view.modules == [EVIL_MODULE]
    assert view.steps.count == 19 and view.steps_source == "the run's tables"  # 20 calls
    assert view.steps.label == "iteration" and view.model_text.startswith("model 10.")
    assert view.fix.available and view.fix.accepted == ["compile"]
    assert [t["outcome"] for t in view.fix.trials] == ["win", "no-measurable-change", "win"]
    assert view.ranks == [0, 1]


def test_metric_not_collected_is_absent_not_zero(tmp_path: Path) -> None:
    view = build_report(load_run(make_run(tmp_path, gpu=False))).view
    keys = {k.key for k in view.kpis}
    assert "gpu_util" not in keys and "peak_cuda" not in keys
    assert {"p50", "p99", "peak_rss", "cpu"} <= keys


def test_runner_summary_wins_over_steps_table(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path))
    manifest = run.manifest.model_copy(
        update={
            "summary": StepSummary(
                count=15, p50_ns=9_000_000, p99_ns=12_000_000, basis="iterations"
            )
        }
    )
    write_model(run.paths.manifest, manifest)
    stats, source = run_numbers(load_run(run.paths.root))
    assert (stats.count, stats.p50_ns, source) == (15, 9_000_000, "run.json summary")


def test_a_summary_of_model_calls_from_before_iterations_is_recomputed(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path))
    old = StepSummary(count=20, p50_ns=9_000_000, p99_ns=12_000_000)  # no basis: model calls
    write_model(run.paths.manifest, run.manifest.model_copy(update={"summary": old}))
    stats, source = run_numbers(load_run(run.paths.root))
    assert (stats.count, stats.basis, source) == (19, "iterations", "the run's tables")
    run.paths.steps.unlink()  # nothing to recompute from: the old figures, said to be so
    stats, source = run_numbers(load_run(run.paths.root))
    assert stats.p50_ns == 9_000_000 and stats.label == "step" and "model calls" in source


def test_without_a_summary_the_numbers_follow_the_runners_rules(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path))
    numbers, source = run_numbers(run)
    starts = run.steps.sort_values("step")["start_ns"].to_numpy()
    assert source == "the run's tables" and numbers.steps_excluded == 1  # options.warmup_steps
    assert numbers.p50_ns == int(pd.Series(starts[1:]).diff().dropna().quantile(0.5))
    assert numbers.mean_cpu_pct == pytest.approx(run.host["proc_cpu_pct"].iloc[1:].mean())


def test_running_run_reads_live_steps(tmp_path: Path) -> None:
    root = make_run(tmp_path, status="running")
    run = load_run(root)
    rows = run.steps.head(4).to_dict("records")
    run.paths.steps.unlink()  # a run in progress has only the live file
    lines = [
        json.dumps({k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}) for r in rows
    ]
    run.paths.steps_live.write_text("\n".join(lines) + '\n{"step": 4, "start', encoding="utf-8")
    view = build_report(load_run(root)).view
    assert view.status == "running" and view.duration_text == "still running"
    assert view.steps.count == 3  # 4 model calls so far: 3 iterations


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (None, "n/a"),
        (512, "512 ns"),
        (812_000, "812 µs"),
        (12_345_678, "12.3 ms"),
        (4.56e9, "4.56 s"),
    ],
)
def test_format_ns(ns: float | None, text: str) -> None:
    assert format_ns(ns) == text


def test_format_bytes() -> None:
    assert [format_bytes(b) for b in (None, 512, 3 * 2**20, 1.5 * 2**30)] == [
        "n/a",
        "512 B",
        "3 MiB",
        "1.5 GiB",
    ]


def test_a_watch_run_in_progress_says_what_is_true(tmp_path: Path) -> None:
    """A `dsprof watch` folder has no trace and, while it runs, no findings yet: the page says
    so, instead of "not analysed" or "--no-trace"."""
    from dsprof.core.manifest import CollectorStatus

    root = make_run(tmp_path, status="running", findings=False, gpu=False)
    run = load_run(root)
    write_model(run.paths.manifest, run.manifest.model_copy(update={"kind": "watch"}))
    report = build_report(load_run(root))
    assert report.view.findings_state.startswith("findings come when the run ends")
    note = next(n for n in report.notes if n.startswith("Op / kernel breakdown"))
    assert "dsprof watch records no trace" in note and "--no-trace" not in note
    # once finished, the collector's own reason is said
    done = run.manifest.model_copy(
        update={
            "kind": "watch",
            "status": "ok",
            "collectors": {"torch_profiler": CollectorStatus(ok=False, reason="watch: no trace")},
        }
    )
    write_model(run.paths.manifest, done)
    notes = build_report(load_run(root)).notes
    assert "Op / kernel breakdown: watch: no trace" in notes
