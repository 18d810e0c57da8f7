"""Comparison figures: two runs on one axis, side-by-side figures on shared ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from report_synthetic import make_run

from dsprof.report.build import build_report
from dsprof.report.compare import run_iterations
from dsprof.report.compare_figures import breakdown_comparison, iterations_overlay, share_axes
from dsprof.report.figures import timeline_figure
from dsprof.store.run_store import load_run


def _axis_of(fig, name: str) -> str:  # type: ignore[no-untyped-def]
    trace = next(t for t in fig.data if t.name == name)
    return "yaxis" + trace.yaxis[1:]


def test_side_by_side_timelines_share_the_ranges_of_the_same_series(tmp_path: Path) -> None:
    gpu = load_run(make_run(tmp_path / "a"))
    cpu = load_run(make_run(tmp_path / "b", base_ms=30.0, gpu=False))
    fa, fb = timeline_figure(gpu), timeline_figure(cpu)
    assert fa is not None and fb is not None
    share_axes(fa, fb)
    # process CPU is row 5 in the GPU run and row 2 in the CPU run: same range all the same
    ka, kb = _axis_of(fa, "process CPU"), _axis_of(fb, "process CPU")
    assert ka != kb and tuple(fa.layout[ka].range) == tuple(fb.layout[kb].range)
    # iterations: one scale, reaching B's slower iterations, from 0
    it_a, it_b = fa.layout["yaxis"].range, fb.layout["yaxis"].range
    assert tuple(it_a) == tuple(it_b) and it_a[0] == 0 and it_a[1] > 30
    # a row only the GPU run has keeps its own scale
    assert fa.layout[_axis_of(fa, "GPU util % (GPU 0)")].range is None


def test_iteration_times_overlay_on_the_same_bins(tmp_path: Path) -> None:
    a = load_run(make_run(tmp_path / "a"))
    b = load_run(make_run(tmp_path / "b", base_ms=11.0, gpu=False))
    fig = iterations_overlay(run_iterations(a), run_iterations(b))
    assert fig is not None and [t.name.split(" ")[0] for t in fig.data] == ["A", "B"]
    assert fig.data[0].xbins == fig.data[1].xbins
    assert np.median(fig.data[1].x) > np.median(fig.data[0].x)


def test_breakdowns_side_by_side_per_part(tmp_path: Path) -> None:
    a = build_report(load_run(make_run(tmp_path / "a"))).breakdown
    b = build_report(load_run(make_run(tmp_path / "b", base_ms=11.0, gpu=False))).breakdown
    fig = breakdown_comparison(a, b)
    assert fig is not None and list(fig.data[0].x) == ["model", "other"]
    assert fig.data[1].y[0] > fig.data[0].y[0]  # B's model calls are slower
