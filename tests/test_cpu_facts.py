"""dsprof.analyzers.cpu_facts: GEMM shapes, outermost ops, usable cores, the severity scale."""

from __future__ import annotations

import pytest
from cpu_synthetic import make_run, op, profiler_steps

from dsprof.analyzers import cpu_facts


@pytest.mark.parametrize(
    ("name", "dims", "shape"),
    [
        ("aten::linear", [[4, 16, 64], [128, 64], [128]], (64, 64, 128)),
        ("aten::addmm", [[128], [8, 64], [64, 128], [], []], (8, 64, 128)),
        ("aten::mm", [[8, 64], [64, 32]], (8, 64, 32)),
        ("aten::bmm", [[12, 1, 64], [12, 64, 128]], (12, 64, 128)),
        ("aten::matmul", [[64], [64]], (1, 64, 1)),
        ("aten::baddbmm", [[12, 1, 128], [12, 1, 64], [12, 64, 128], [], []], (12, 64, 128)),
    ],
    ids=["linear-3d", "addmm", "mm", "bmm", "dot", "baddbmm"],
)
def test_gemm_rows_k_n_from_input_dims(tmp_path, name, dims, shape):
    run = make_run(tmp_path, events=[*profiler_steps(1000, 1), op(name, 10, 100, dims=dims)])
    (row,) = cpu_facts.gemm_calls(run.traces[0]).itertuples()
    assert (row.rows, row.k, row.n) == shape
    assert row.flops == 2.0 * shape[0] * shape[1] * shape[2]
    assert row.dtype == "float"


def test_only_outermost_gemms_per_thread(tmp_path):
    events = [
        *profiler_steps(1000, 1),
        op("aten::matmul", 10, 500, dims=[[8, 64], [64, 64]]),
        op("aten::mm", 20, 400, dims=[[8, 64], [64, 64]]),  # nested in matmul
        op("aten::mm", 30, 100, tid=2, dims=[[8, 64], [64, 64]]),  # another thread
        op("aten::mm", 600, 100, dims=[[8, 64], [64, 64]]),  # after matmul ended
    ]
    calls = cpu_facts.gemm_calls(make_run(tmp_path, events=events).traces[0])
    assert sorted(zip(calls["name"], calls["dur_ns"], strict=True)) == [
        ("aten::matmul", 500_000),
        ("aten::mm", 100_000),
        ("aten::mm", 100_000),
    ]


@pytest.mark.parametrize(
    ("impact", "severity"),
    [
        (0.30, "high"),
        (0.2999, "medium"),
        (0.10, "medium"),
        (0.0999, "low"),
        (0.02, "low"),
        (0.0199, None),
    ],
)
def test_severity_scale(impact, severity):
    assert cpu_facts.severity_for(impact) == severity
