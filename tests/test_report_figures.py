"""Figure builders on synthetic run folders: which rows and series appear, and label escaping."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_synthetic import EVIL_OP, START_NS, make_run, step_table

from dsprof.report.build import build_report
from dsprof.report.figures import MAX_STEP_BARS, plot_text, timeline_figure
from dsprof.store import load_run


def _subplot_titles(fig) -> list[str]:
    return [a.text for a in fig.layout.annotations if a.text != "traced window"]


def test_timeline_rows_follow_the_collected_metrics(tmp_path: Path) -> None:
    gpu = timeline_figure(load_run(make_run(tmp_path / "gpu")))
    cpu = timeline_figure(load_run(make_run(tmp_path / "cpu", gpu=False)))
    assert _subplot_titles(gpu) == [
        "step (ms)",
        "GPU util %",
        "GPU mem GiB",
        "GPU power W",
        "CPU %",
        "RSS GiB",
    ]
    assert _subplot_titles(cpu) == ["step (ms)", "CPU %", "RSS GiB"]
    # one series per GPU, and the shaded traced window spans the traced steps 1-3
    assert sum(1 for t in gpu.data if t.name and t.name.startswith("GPU util % (GPU")) == 2
    steps = step_table(20, 10.0, START_NS)
    window = [s for s in gpu.layout.shapes if s.fillcolor == "orange"]
    assert window and window[0].x0 == pytest.approx((steps["start_ns"][1] - START_NS) / 1e9)
    assert window[0].x1 == pytest.approx((steps["end_ns"][3] - START_NS) / 1e9)


def test_many_steps_draw_a_line_not_bars(tmp_path: Path) -> None:
    fig = timeline_figure(load_run(make_run(tmp_path, n_steps=MAX_STEP_BARS + 1, gpu=False)))
    assert fig.data[0].type == "scatter" and len(fig.data[0].x) == MAX_STEP_BARS + 1


def test_multi_rank_job_without_top_level_steps(tmp_path: Path) -> None:
    root = make_run(tmp_path, ranks=2, gpu=False)
    (root / "metrics" / "steps.parquet").unlink()  # a job keeps its steps per rank
    figures = {s.key: s.figure for s in build_report(load_run(root)).figures}
    assert [t.name for t in figures["latency"].data] == ["rank 0", "rank 1"]
    assert [t.name for t in figures["timeline"].data[:2]] == [
        "rank 0 step (ms)",
        "rank 1 step (ms)",
    ]
    assert [t.name for t in figures["ranks"].data] == ["rank 0", "rank 1"]


def test_plot_text_escapes_plotly_markup() -> None:
    assert plot_text(EVIL_OP) == "&lt;/script&gt;&lt;b&gt;x"
    assert plot_text("a & b") == "a &amp; b"
