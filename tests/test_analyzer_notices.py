"""Notices: silence must not read as health (no-device-activity, unsupported-device, no-steps,
init-excluded), in the document and in the human output at 80 columns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trace_synthetic import TraceBuilder

from dsprof.analyzers import analyze_traces
from dsprof.core.findings import FindingsDocument


def _codes(doc: FindingsDocument) -> list[str]:
    return [n.code for n in doc.notices]


def _item_loop(tb: TraceBuilder) -> None:
    """Host work that the CPU analyzers would call an .item() loop (host-sync on a CPU trace)."""
    for i in range(40):
        tb.op("aten::item", 200 + 10 * i, 5)


def test_gpu_runtime_calls_without_device_events(tmp_path: Path) -> None:
    """A GPU trace recorded without its device timeline: nothing is judged, the host is not
    blamed for the GPU's work, and the notice says why."""
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    _item_loop(tb)
    for i in range(20):
        tb.runtime("cudaLaunchKernel", 20 + 5 * i, 3, correlation=100 + i)
    doc = analyze_traces([tb.write(tmp_path / "t.json")])
    assert _codes(doc) == ["no-device-activity"]
    assert "20 NVIDIA CUDA" in doc.notices[0].message
    assert doc.findings == []


def test_a_cpu_run_on_a_gpu_machine_is_judged_as_cpu(tmp_path: Path) -> None:
    tb = TraceBuilder()  # deviceProperties list an A100 that no event uses
    tb.step(1, 0, 1000)
    _item_loop(tb)
    doc = analyze_traces([tb.write(tmp_path / "t.json")])
    assert _codes(doc) == ["no-device-activity"]
    assert "analysed as a CPU run" in doc.notices[0].message
    assert [f.category for f in doc.findings] == ["host-sync"]


def test_another_accelerator(tmp_path: Path) -> None:
    tb = TraceBuilder(gpu=False)
    tb.step(1, 0, 1000)
    _item_loop(tb)
    tb.span("mtia_runtime", "runFunction - job_prep_and_submit_for_execution", 10, 300)
    doc = analyze_traces([tb.write(tmp_path / "t.json")])
    assert _codes(doc) == ["unsupported-device"]
    assert doc.findings == []


def test_no_steps_says_what_the_window_is(tmp_path: Path) -> None:
    tb = TraceBuilder()
    for i in range(4):
        tb.kernel(f"k{i}", 1000 * i, 100, launch_ts=1000 * i - 10)
    doc = analyze_traces([tb.write(tmp_path / "t.json")])
    assert _codes(doc) == ["no-steps"]
    assert "the whole trace (3.1 ms)" in doc.notices[0].message


def test_human_output_fits_80_columns_and_says_nothing_was_judged(tmp_path: Path) -> None:
    tb = TraceBuilder(gpu=False)
    tb.step(1, 0, 1000)
    tb.op("aten::add", 10, 5)
    tb.span("mtia_runtime", "runFunction - job_prep_and_submit_for_execution", 10, 300)
    path = tb.write(tmp_path / "t.json")
    proc = subprocess.run(
        [sys.executable, "-m", "dsprof", "analyze", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("notice (unsupported-device): t.json:")
    assert all(len(line) <= 80 for line in lines), lines
    assert "No bottleneck found" not in proc.stdout
    assert "could not be judged" in proc.stdout


def test_nccl_collectives_without_device_events_are_a_gpu_job(tmp_path: Path) -> None:
    """Host-side nccl:* spans and no kernel: a GPU job whose device timeline is missing."""
    tb = TraceBuilder(gpu=False)
    tb.step(1, 0, 1000)
    _item_loop(tb)
    tb.span("user_annotation", "nccl:all_reduce", 700, 50)
    doc = analyze_traces([tb.write(tmp_path / "t.json")])
    assert _codes(doc) == ["no-device-activity"]
    assert "NCCL" in doc.notices[0].message
    assert doc.findings == []


def test_a_sync_that_waits_for_unrecorded_device_work(tmp_path: Path) -> None:
    """A 5 ms blocking copy while no recorded device work runs: it waited for work the trace
    does not hold (launched before the profiler started), so that time is not judged."""
    tb = TraceBuilder()
    tb.step(1, 0, 6000)
    tb.kernel("Memcpy DtoH (Device -> Pageable)", 5010, 2, cat="gpu_memcpy", launch_ts=0,
              launch_dur=5015, launch="hipMemcpyWithStream")  # fmt: skip
    tb.kernel("k", 5100, 800, launch_ts=5050)
    doc = analyze_traces([tb.write(tmp_path / "t.json")])
    assert _codes(doc) == ["unrecorded-device-work"]
    assert not {f.category for f in doc.findings} & {"gpu-idle", "host-sync"}
