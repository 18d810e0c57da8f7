"""The per-iteration breakdown (the report's first figure) on real traces and real runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from planted_runs import planted_run
from report_synthetic import make_run

from dsprof.analyzers import analyze_traces
from dsprof.report.breakdown import run_breakdown, trace_breakdown
from dsprof.report.build import build_report
from dsprof.store.run_store import load_run
from dsprof.trace import load_trace

TRACES = Path(__file__).parent / "data" / "traces"
RESNET_W0 = TRACES / "kineto/resnet50_num_workers_0/worker0.1623143089861.pt.trace.json.gz"
RESNET_W4 = TRACES / "kineto/resnet50_num_workers_4/worker0.1623212756351.pt.trace.json.gz"
HTA_TEST = TRACES / "hta/test.json.gz"


def _adds_up(parts: dict[str, np.ndarray], totals: np.ndarray) -> None:
    assert np.array_equal(sum(parts.values()), totals), (parts, totals)


@pytest.mark.parametrize(
    ("trace", "part", "low", "high"),
    [
        (RESNET_W0, "data wait", 0.30, 0.50),  # io-stall: DataLoader 40 % of the steps
        (RESNET_W4, "data wait", 0.0, 0.10),  # workers load ahead: next to nothing
        (HTA_TEST, "host sync", 0.30, 0.60),  # host-sync high
    ],
    ids=["resnet-workers-0", "resnet-workers-4", "hta-host-sync"],
)
def test_real_gpu_traces_show_their_bottleneck_part(
    trace: Path, part: str, low: float, high: float
) -> None:
    bd = trace_breakdown(load_trace(trace))
    assert bd is not None and bd.gpu, "GPU traces get a GPU row"
    _adds_up(bd.host, bd.totals_ns)
    _adds_up(bd.gpu, bd.totals_ns)
    share = bd.share(part)
    assert share is not None and low <= share <= high, bd.shares()


def test_the_data_wait_part_agrees_with_the_io_stall_finding() -> None:
    finding = next(f for f in analyze_traces([RESNET_W0]).findings if f.category == "io-stall")
    dl_share = next(e.value for e in finding.evidence if e.metric == "dataloader_share")
    bd = trace_breakdown(load_trace(RESNET_W0))
    assert bd is not None
    assert bd.share("data wait") == pytest.approx(float(dl_share), abs=0.03)


def test_a_real_data_bound_run_highlights_data_wait_under_its_finding() -> None:
    run = planted_run("io_stall")
    bd = run_breakdown(run)
    assert bd is not None and len(bd.labels) >= 3 and "traced" in bd.source
    _adds_up(bd.host, bd.totals_ns)
    data, model = bd.share("data wait"), bd.share("model")
    assert data is not None and model is not None and data > model
    report = build_report(run)
    assert report.view.findings[0].category == "io-stall"
    assert report.figures[0].key == "breakdown"
    marked = [t.name for t in report.figures[0].figure.data if "top finding" in t.name]
    assert marked and marked[0].startswith("data wait")


def test_an_untraced_run_splits_iterations_into_model_and_the_rest(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path, gpu=False))
    bd = run_breakdown(run)
    assert bd is not None and set(bd.host) == {"model", "other"} and not bd.gpu
    assert len(bd.labels) == 18  # 20 calls: 19 iterations, the first left out as warm-up
    assert np.all(bd.host["other"] == 1_000_000)  # 1 ms between the synthetic model calls
