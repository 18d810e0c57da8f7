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
        "iterations (ms)",
        "GPU util (%)",
        "GPU mem (GiB)",
        "GPU power (W)",
        "process CPU (% of one core)",
        "system CPU (% of all cores)",
        "RSS (GiB)",
    ]
    assert _subplot_titles(cpu) == [
        "iterations (ms)",
        "process CPU (% of one core)",
        "system CPU (% of all cores)",
        "RSS (GiB)",
    ]
    # process CPU (100 % = one core) and system CPU (100 % = all cores): each its own labelled
    # axis, never one shared scale
    axes = {t.name: t.yaxis for t in cpu.data}
    assert axes["process CPU"] != axes["system CPU"]
    layout = cpu.layout.to_plotly_json()
    titles = {k: v.get("title", {}).get("text") for k, v in layout.items() if k.startswith("yaxis")}
    assert titles["yaxis2"] == "% of one core" and titles["yaxis3"] == "% of all cores"
    # one series per GPU, same colour, another dash; and the shaded traced window spans the
    # traced steps 1-3
    util = [t for t in gpu.data if t.name and t.name.startswith("GPU util % (GPU")]
    assert len(util) == 2 and util[0].line.color == util[1].line.color
    assert util[0].line.dash != util[1].line.dash
    steps = step_table(20, 10.0, START_NS)
    window = [s for s in gpu.layout.shapes if s.fillcolor == "orange"]
    assert window and window[0].x0 == pytest.approx((steps["start_ns"][1] - START_NS) / 1e9)
    assert window[0].x1 == pytest.approx((steps["end_ns"][3] - START_NS) / 1e9)
    # zoomed to the iterations: the run's start-up (0.2 s before the first step) is outside
    x0, x1 = gpu.layout.xaxis.range
    assert x0 > 0.15 and x1 < (int(steps["end_ns"].max()) - START_NS) / 1e9 + 0.05
    # iterations as light bars with the model call darker inside each
    bars = {t.name: t for t in gpu.data if t.type == "bar"}
    assert set(bars) == {"iteration (ms)", "model call (ms)"}
    assert len(bars["iteration (ms)"].x) == 19 and min(bars["model call (ms)"].y) >= 10.0


def test_a_series_keeps_its_colour_in_every_figure(tmp_path: Path) -> None:
    from dsprof.report.colors import SERIES_COLORS

    report = build_report(load_run(make_run(tmp_path, gpu=False)))
    colours: dict[str, set[str]] = {}
    for spec in report.figures:
        for t in spec.figure.data:
            colour = getattr(getattr(t, "marker", None), "color", None)
            if t.type == "scatter":
                colour = t.line.color
            if isinstance(colour, str) and t.name:
                colours.setdefault(t.name.split(" ")[0], set()).add(colour)
    assert colours["model"] == {SERIES_COLORS["model"]}
    assert colours["process"] == {SERIES_COLORS["process CPU"]}


def test_many_steps_draw_a_line_not_bars(tmp_path: Path) -> None:
    fig = timeline_figure(load_run(make_run(tmp_path, n_steps=MAX_STEP_BARS + 2, gpu=False)))
    assert fig.data[0].type == "scatter" and len(fig.data[0].x) == MAX_STEP_BARS + 1


def test_multi_rank_job_without_top_level_steps(tmp_path: Path) -> None:
    root = make_run(tmp_path, ranks=2, gpu=False)
    (root / "metrics" / "steps.parquet").unlink()  # a job keeps its steps per rank
    figures = {s.key: s.figure for s in build_report(load_run(root)).figures}
    assert [t.name for t in figures["latency"].data] == ["rank 0", "rank 1"]
    assert [t.name for t in figures["timeline"].data[:2]] == [
        "rank 0 model call (ms)",
        "rank 1 model call (ms)",
    ]
    assert [t.name for t in figures["ranks"].data] == ["rank 0", "rank 1"]


def test_plot_text_escapes_plotly_markup() -> None:
    assert plot_text(EVIL_OP) == "&lt;/script&gt;&lt;b&gt;x"
    assert plot_text("a & b") == "a &amp; b"


def test_the_histogram_shows_the_traced_iterations_apart(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path, gpu=False))  # calls 1-3 traced: iterations 0-3 touch them
    latency = {s.key: s.figure for s in build_report(run).figures}["latency"]
    series = {t.name: len(t.x) for t in latency.data}
    assert series == {"iterations": 15, "traced (left out)": 4}
    marks = [a.text for a in latency.layout.annotations]
    assert marks[0].startswith("p50 ") and marks[1].startswith("p99 ")
    assert [a.xanchor for a in latency.layout.annotations] == ["right", "left"]
