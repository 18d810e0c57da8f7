"""Trace-derived figures: op nesting, kernel breakdown on a real H100 trace, the roofline."""

from __future__ import annotations

import gzip
import html
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from report_synthetic import make_run

from dsprof.report.build import build_report
from dsprof.report.trace_figures import top_level_ops
from dsprof.store import load_run

QWEN = (
    Path(__file__).parent
    / "data"
    / "traces"
    / "tracelens"
    / "Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz"
)


def test_top_level_ops_drop_nested_ops() -> None:
    ops = pd.DataFrame(
        {
            "name": [
                "aten::linear",
                "aten::addmm",
                "aten::t",
                "aten::relu",
                "aten::linear",
                "aten::mm",
            ],
            "tid": [1, 1, 1, 1, 2, 2],
            "ts_ns": [0, 10, 5, 100, 0, 1],
            "dur_ns": [50, 30, 2, 10, 20, 20],
        }
    )
    ops["end_ns"] = ops["ts_ns"] + ops["dur_ns"]
    top = top_level_ops(ops)
    assert sorted(zip(top["tid"], top["name"], strict=True)) == [
        (1, "aten::linear"),
        (1, "aten::relu"),
        (2, "aten::linear"),
    ]


def _kernels_in_step_window(path: Path) -> list[dict]:
    """Kernels overlapping the host-side ProfilerStep span, read straight from the JSON."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        events = json.load(f)["traceEvents"]
    steps = [
        e
        for e in events
        if e.get("cat") == "user_annotation" and str(e.get("name", "")).startswith("ProfilerStep#")
    ]
    lo = min(e["ts"] for e in steps)
    hi = max(e["ts"] + e["dur"] for e in steps)
    kernels = [e for e in events if e.get("cat") == "kernel"]
    return [e for e in kernels if e["ts"] < hi and e["ts"] + e["dur"] > lo]


@pytest.fixture(scope="module")
def qwen_report(tmp_path_factory: pytest.TempPathFactory):
    root = make_run(tmp_path_factory.mktemp("runs"))
    shutil.copy(QWEN, root / "trace" / QWEN.name)
    return build_report(load_run(root))


def test_kernel_breakdown_on_a_real_h100_trace(qwen_report) -> None:
    figures = {s.key: s.figure for s in qwen_report.figures}
    assert {"ops", "kernels", "gpu_ops"} <= figures.keys()
    kernels = _kernels_in_step_window(QWEN)
    expected_ms = sum(e["dur"] for e in kernels) / 1e3
    # every kernel counted once, by name and by the operator that launched it
    assert sum(figures["gpu_ops"].data[0].x) == pytest.approx(expected_ms, rel=1e-6)
    bars = figures["kernels"].data[0]
    assert sum(bars.x) == pytest.approx(expected_ms, rel=1e-6)
    # the largest bar is at the top: the last category of a horizontal bar chart
    assert bars.x[-1] == max(bars.x[:-1]) or bars.y[0] == "(other)"
    # the hover text of the top bar holds the full name of the kernel with the most time
    per_name: dict[str, float] = {}
    for e in kernels:
        per_name[e["name"]] = per_name.get(e["name"], 0.0) + e["dur"]
    top_name = max(per_name, key=per_name.__getitem__)
    assert html.unescape(bars.customdata[-1].replace("<br>", "")) == top_name
    # template signatures are cut to 80 characters (before escaping for plotly)
    # (a shortened name shared by several kernels gets a number: each bar is one kernel)
    assert all(len(re.sub(r" \(\d+\)$", "", html.unescape(label))) <= 80 for label in bars.y)
    assert len(set(bars.y)) == len(bars.y)
    assert any("&lt;" in label for label in bars.y)


def _mm_intensities(path: Path) -> set[float]:
    """FLOP/byte of every bf16 aten::mm in the trace, computed here from its Input Dims."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        events = json.load(f)["traceEvents"]
    out = set()
    for e in events:
        args = e.get("args", {})
        if e.get("name") == "aten::mm" and args.get("Input type", [None])[0] == "c10::BFloat16":
            (m, k), (_, n) = args["Input Dims"][:2]
            out.add(round(2 * m * k * n / (2 * (m * k + k * n + m * n)), 6))
    return out


def test_roofline_on_a_real_h100_trace(qwen_report) -> None:
    from dsprof.trace.devices import match_gpu

    figures = {s.key: s.figure for s in qwen_report.figures}
    assert "roofline" in figures, qwen_report.notes
    fig = figures["roofline"]
    assert "NVIDIA H100 80GB HBM3" in fig.layout.title.text
    spec = match_gpu("NVIDIA H100 80GB HBM3")
    roofs = [t for t in fig.data if t.mode == "lines"]
    assert roofs, "no roof drawn"
    for roof in roofs:  # the roof is min(peak, bandwidth x intensity) of the peak table's row
        slope = [y / x for x, y in zip(roof.x, roof.y, strict=True)]
        assert slope[0] == pytest.approx(spec.mem_bw_gbs * 1e9 / 1e12)
    assert max(roofs[0].y) == pytest.approx(spec.peak_tflops("c10::BFloat16"))
    mm = next(t for t in fig.data if t.name == "aten::mm")
    drawn = {round(x, 6) for x in mm.x}
    assert drawn and drawn <= _mm_intensities(QWEN)


def test_multi_rank_run_shows_the_lowest_traced_rank(tmp_path: Path) -> None:
    root = make_run(tmp_path, ranks=2)
    rank1 = root / "ranks" / "1" / "trace"
    rank1.mkdir(parents=True, exist_ok=True)
    shutil.copy(QWEN, rank1 / QWEN.name)
    report = build_report(load_run(root))
    assert "kernels" in {s.key for s in report.figures}
    assert any(n.startswith(f"trace figures show rank 1: {QWEN.name}") for n in report.notes)
