"""cpu-threads: exact checks on hand-built runs, then real `dsprof run` runs."""

from __future__ import annotations

import os

import pytest
from cpu_synthetic import host_frame, linear, make_run, op, profiler_steps, steps_frame
from planted_runs import planted_run

from dsprof.analyzers.cpu_threads import CpuThreadsAnalyzer


def _events() -> list[dict]:
    """10 ms window: 6 ms of GEMM, 1 ms of a big add (parallel), 1 ms of a tiny add (serial)."""
    return [
        *profiler_steps(5000, 2),
        *linear(100, 3000, 64, 1024, 2048),
        *linear(5100, 3000, 64, 1024, 2048),
        op("aten::add", 3200, 1000, dims=[[512, 128], [512, 128]]),  # 65536 elements >= GRAIN_SIZE
        op("aten::add", 8200, 1000, dims=[[8, 8], [8, 8]]),
    ]


def _ev(f) -> dict:
    return {e.metric: e.value for e in f.evidence}


@pytest.mark.parametrize(
    ("threads", "severity", "impact"),
    [(1, "high", 0.525), (3, "medium", 0.175)],
    ids=["1-of-4", "3-of-4"],
)
def test_under_subscription_is_amdahl_on_the_parallel_share(tmp_path, threads, severity, impact):
    run = make_run(
        tmp_path, events=_events(), child_info={"torch_num_threads": threads, "usable_cpus": 4}
    )
    (f,) = CpuThreadsAnalyzer().analyze(run)
    assert (f.category, f.severity, f.impact, f.confidence) == (
        "cpu-threads",
        severity,
        impact,
        1.0,
    )
    ev = _ev(f)
    assert ev["parallel_share"] == 0.7
    assert (ev["torch_num_threads"], ev["usable_cpus"]) == (threads, 4.0)
    assert f.recipes == ["threads"]


def test_threads_matching_the_cores_is_clean(tmp_path):
    run = make_run(
        tmp_path, events=_events(), child_info={"torch_num_threads": 4, "usable_cpus": 4}
    )
    assert CpuThreadsAnalyzer().analyze(run) == []


def test_usable_cores_fall_back_to_run_json_and_cap_at_physical(tmp_path):
    fallback = make_run(
        tmp_path, events=_events(), child_info={"torch_num_threads": 1}, cpu_count=4
    )
    (f,) = CpuThreadsAnalyzer().analyze(fallback)
    assert (f.impact, f.confidence, _ev(f)["usable_cpus"]) == (0.525, 0.7, 4.0)
    # 16 logical CPUs in the affinity mask but 4 physical cores: 4 threads is the right pool
    hyper = make_run(
        tmp_path, events=_events(), child_info={"torch_num_threads": 4, "usable_cpus": 16}
    )
    assert CpuThreadsAnalyzer().analyze(hyper) == []


def test_without_trace_cpu_use_gives_the_parallel_share(tmp_path):
    run = make_run(
        tmp_path,
        steps=steps_frame([100.0] * 5),
        host=host_frame(1.0, cpu_pct=95.0),
        child_info={"torch_num_threads": 1, "usable_cpus": 2},
    )
    (f,) = CpuThreadsAnalyzer().analyze(run)
    assert (f.severity, f.impact) == ("high", 0.475)
    assert _ev(f)["parallel_share"] == 0.95


@pytest.mark.parametrize(
    ("host", "severity"),
    [(None, "medium"), (host_frame(1.0, cpu_pct=198.0, invol_per_s=2000.0), "high")],
    ids=["pool-only", "pool-and-thrashing"],
)
def test_pool_larger_than_the_cores(tmp_path, host, severity):
    run = make_run(
        tmp_path, events=_events(), host=host, child_info={"torch_num_threads": 8, "usable_cpus": 2}
    )
    (f,) = CpuThreadsAnalyzer().analyze(run)
    assert (f.severity, f.impact, f.confidence) == (severity, 0.525, 0.5)
    assert _ev(f)["compute_threads_demanded"] == 8
    if host is not None:
        assert _ev(f)["involuntary_switches"] == 1000.0


def test_several_busy_processes_that_thrash(tmp_path):
    host = host_frame(1.0, cpu_pct=195.0, procs=4, invol_per_s=2400.0)
    run = make_run(
        tmp_path, events=_events(), host=host, child_info={"torch_num_threads": 2, "usable_cpus": 2}
    )
    (f,) = CpuThreadsAnalyzer().analyze(run)
    assert (f.severity, f.impact) == ("high", 0.525)
    assert "across 4 processes" in f.title
    # three of them DataLoader workers (one thread each): 2 + 3 = 5 threads still thrash 2 cores
    loaders = {"dataloaders": [{"num_workers": 3}], "torch_num_threads": 2, "usable_cpus": 2}
    (f,) = CpuThreadsAnalyzer().analyze(
        make_run(tmp_path, events=_events(), host=host, child_info=loaders)
    )
    assert _ev(f)["compute_threads_demanded"] == 5
    assert f.impact == 0.42  # 0.7 * (1 - 2/5)
    # the same processes without saturating the cores (DataLoader workers waiting on I/O): clean
    calm = make_run(
        tmp_path,
        events=_events(),
        host=host_frame(1.0, cpu_pct=100.0, procs=4),
        child_info={"torch_num_threads": 2, "usable_cpus": 2},
    )
    assert CpuThreadsAnalyzer().analyze(calm) == []


def test_other_processes_on_the_cores_lower_confidence(tmp_path):
    host = host_frame(1.0, cpu_pct=100.0, sys_pct=90.0)  # others use 40 % of the machine
    run = make_run(
        tmp_path, events=_events(), host=host, child_info={"torch_num_threads": 1, "usable_cpus": 2}
    )
    (f,) = CpuThreadsAnalyzer().analyze(run)
    assert f.confidence == 0.6
    assert _ev(f)["other_processes_cpu"] == 40.0


@pytest.mark.slow  # one `dsprof run` (~5-30 s), shared per session with test_planted.py
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs a multi-core machine")
def test_real_run_single_thread_on_a_multi_core_box():
    (f,) = CpuThreadsAnalyzer().analyze(planted_run("cpu_threads"))
    assert f.severity in ("medium", "high")
    ev = _ev(f)
    assert ev["torch_num_threads"] == 1
    assert ev["usable_cpus"] >= 2
    assert ev["parallel_share"] > 0.5  # two convolutions dominate


@pytest.mark.slow  # one `dsprof run` (~5-30 s), shared per session with test_planted.py
def test_real_run_default_threads_is_clean():
    assert CpuThreadsAnalyzer().analyze(planted_run("cpu_fp32_linear")) == []
