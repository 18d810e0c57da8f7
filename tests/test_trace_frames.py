"""TraceFrames views: steps, windows, correlation, kernel -> op attribution, syncs, memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from trace_cache import trace
from trace_synthetic import TraceBuilder

from dsprof.trace import load_trace


@pytest.fixture
def synthetic(tmp_path: Path):
    tb = TraceBuilder(base_ns=10**18)
    tb.step(7, 0, 1000)
    tb.step(8, 1000, 500)
    tb.op(
        "aten::linear",
        10,
        100,
        **{"Input Dims": [[4, 8], [16, 8], [16]], "Input type": ["float"] * 3},
    )
    tb.op(
        "aten::addmm",
        20,
        80,
        **{"Input Dims": [[16], [4, 8], [8, 16]], "Input type": ["float"] * 3},
    )
    tb.kernel("sgemm_kernel", 50, 40, launch_ts=30, launch_dur=10)
    tb.kernel("Memcpy DtoH (Device -> Pageable)", 200, 10, cat="gpu_memcpy", launch_ts=150, launch_dur=70,
              launch="cudaMemcpyAsync", bytes=64)  # fmt: skip
    tb.runtime("cudaDeviceSynchronize", 300, 50)
    tb.runtime("cudaStreamSynchronize", 400, 20)
    tb.memory(30, 1024, allocated=1024, reserved=4096)
    return load_trace(tb.write(tmp_path / "s.json"))


def test_steps_and_window(synthetic) -> None:
    base = 10**18
    assert synthetic.steps["step"].tolist() == [7, 8]
    assert synthetic.steps["dur_ns"].tolist() == [1_000_000, 500_000]
    assert synthetic.window == (base, base + 1_500_000)
    assert synthetic.window_label == "ProfilerStep#7-#8"


def test_launch_correlation_and_kernel_ops(synthetic) -> None:
    k = synthetic.kernel_ops
    assert len(k) == 1
    row = k.iloc[0]
    assert row["launch_name"] == "cudaLaunchKernel"
    assert row["launch_dur_ns"] == 10_000
    assert row["op_name"] == "aten::addmm"  # the innermost op around the launch call


def test_host_syncs_kinds(synthetic) -> None:
    kinds = dict(
        zip(synthetic.host_syncs["name"].astype(str), synthetic.host_syncs["kind"], strict=True)
    )
    assert kinds == {
        "cudaMemcpyAsync": "copy",
        "cudaDeviceSynchronize": "explicit",
        "cudaStreamSynchronize": "implicit",
    }


def test_memcpy_direction_and_pageable(synthetic) -> None:
    mc = synthetic.memcpy
    assert mc["direction"].tolist() == ["DtoH"] and mc["pageable"].tolist() == [True]
    assert mc["bytes"].tolist() == [64]


def test_memory_events(synthetic) -> None:
    m = synthetic.memory.iloc[0]
    assert (m["bytes"], m["total_allocated"], m["total_reserved"], m["device_type"]) == (
        1024,
        1024,
        4096,
        1,
    )


def test_decoded_shapes(synthetic) -> None:
    dims = synthetic.decoded_shapes(synthetic.cpu_ops["input_dims"]).tolist()
    assert dims == [[[4, 8], [16, 8], [16]], [[16], [4, 8], [8, 16]]]


def test_real_trace_correlation_and_comm() -> None:
    tf = trace("hta/event_sync_trace.json.gz")
    assert set(tf.host_syncs["kind"]) == {"explicit", "implicit", "copy"}
    assert tf.launches["launch_name"].notna().all()
    b200 = trace("tracelens/eager_trace.json.gz")
    names = b200.comm_kernels["name"].astype(str)
    assert names.str.contains("multimem_all_reduce_kernel").sum() == 73
    assert names.str.contains("nccl", case=False).sum() == 1
    assert b200.rank == 0 and b200.distributed["world_size"] == 8


def test_kernel_ops_on_real_trace_attribute_most_kernels() -> None:
    tf = trace("tracelens/google_owlv2-large-patch14-ensemble__1016001.json.gz")
    k = tf.kernel_ops
    assert (k["op_index"] >= 0).mean() > 0.99
    assert "aten::addmm" in set(k["op_name"])


def test_cpu_trace_from_torch_profiler(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from torch.profiler import ProfilerActivity, profile, schedule

    out = tmp_path / "cpu.pt.trace.json.gz"
    model = torch.nn.Linear(8, 4).eval()
    with profile(
        activities=[ProfilerActivity.CPU],
        record_shapes=True,
        schedule=schedule(wait=0, warmup=1, active=2),
        on_trace_ready=lambda p: p.export_chrome_trace(str(out)),
    ) as prof:
        for _ in range(3):
            model(torch.randn(2, 8))  # grad mode on: autograd records sequence numbers
            prof.step()
    tf = load_trace(out)
    assert not tf.has_gpu_activity
    assert tf.steps["step"].tolist() == [1, 2]
    linear = tf.cpu_ops[tf.cpu_ops["name"] == "aten::linear"]
    assert len(linear) == 2
    assert tf.decoded_shapes(linear["input_dims"]).iloc[0] == [[2, 8], [4, 8], [4]]
    assert (tf.cpu_ops["seq"] >= 0).any()
    assert tf.base_ns > 1_600_000_000 * 10**9  # epoch clock
    assert np.all(tf.cpu_ops["ts_ns"] >= tf.window[0] - 10**9)
