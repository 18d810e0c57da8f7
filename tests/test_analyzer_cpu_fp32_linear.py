"""cpu-fp32-linear: exact checks on hand-built traces, then real `dsprof run` runs."""

from __future__ import annotations

import pytest
from cpu_synthetic import gpu_trace_run, kernel, linear, make_run, op, profiler_steps
from planted_runs import planted_run

from dsprof.analyzers import analyze_run
from dsprof.analyzers.cpu_facts import gemm_calls
from dsprof.analyzers.cpu_fp32_linear import CpuFp32LinearAnalyzer
from dsprof.analyzers.cpu_threads import CpuThreadsAnalyzer


def _two_steps(dur_us: float, **kw):
    """Two 5 ms ProfilerSteps, one Linear [64x1024]x[1024x2048] of dur_us in each."""
    return (
        profiler_steps(5000, 2)
        + linear(100, dur_us, 64, 1024, 2048, **kw)
        + linear(5100, dur_us, 64, 1024, 2048, **kw)
    )


@pytest.mark.parametrize(
    ("dur_us", "severity", "impact"),
    [(3000, "high", 0.3391), (2600, "medium", 0.2939), (1500, "low", 0.1696), (400, "low", 0.0452)],
    ids=["share-0.6", "share-0.52", "share-0.3-minority", "share-0.08"],
)
def test_impact_is_the_int8_saving_on_the_fp32_gemm_share(tmp_path, dur_us, severity, impact):
    run = make_run(tmp_path, events=_two_steps(dur_us))
    (f,) = CpuFp32LinearAnalyzer().analyze(run)
    share = 2 * dur_us / 10_000  # nested addmm not counted twice
    assert (f.category, f.severity, f.impact) == ("cpu-fp32-linear", severity, impact)
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["fp32_gemm_share"] == pytest.approx(share)
    assert ev["fp32_gemm_calls"] == 2
    assert ev["largest_gemm"] == "aten::linear [64x1024] x [1024x2048]"
    assert ev["fp32_gemm_gflops"] == pytest.approx(2 * 64 * 1024 * 2048 / (dur_us * 1000), rel=1e-3)
    assert f.recipes == ["int8-dynamic", "bf16", "compile"]
    assert f"{share:.0%}" in f.title


def test_below_min_share_no_finding(tmp_path):
    assert CpuFp32LinearAnalyzer().analyze(make_run(tmp_path, events=_two_steps(200))) == []


@pytest.mark.parametrize(
    "events",
    [
        linear(100, 4000, 64, 1024, 2048, dtype="c10::BFloat16"),
        linear(100, 4000, 1, 2048, 2048),  # one row: small-batch's
        linear(100, 4000, 16, 64, 64),  # 131 kFLOP: dispatch-bound
    ],
    ids=["bf16", "one-row", "dispatch-bound"],
)
def test_gemms_int8_would_not_help_are_not_counted(tmp_path, events):
    run = make_run(tmp_path, events=profiler_steps(5000, 1) + events)
    assert CpuFp32LinearAnalyzer().analyze(run) == []


@pytest.mark.parametrize(
    ("extra", "info", "fires"),
    [
        ([kernel(200, 2000)], {}, False),
        ([], {"device_types": ["cuda"]}, False),
        ([], {"device_types": ["cpu"]}, True),  # a GPU in the box, left unused
    ],
    ids=["gpu-kernels", "cuda-outputs", "cpu-work-on-a-gpu-box"],
)
def test_only_work_done_on_the_cpu_counts(tmp_path, extra, info, fires):
    run = make_run(tmp_path, events=_two_steps(3000) + extra, child_info=info, gpus=1)
    assert bool(CpuFp32LinearAnalyzer().analyze(run)) is fires


def test_capped_at_low_under_an_exact_fault(tmp_path):
    # 1 of 4 cores' threads: cpu-threads fires high on the same run, so int8 waits
    run = make_run(
        tmp_path, events=_two_steps(3000), child_info={"torch_num_threads": 1, "usable_cpus": 4}
    )
    first_pass = CpuThreadsAnalyzer().analyze(run)
    assert [x.severity for x in first_pass] == ["high"]
    (f,) = CpuFp32LinearAnalyzer().analyze(run, first_pass)
    assert f.severity == "low"
    assert f.impact == 0.3391
    assert "cpu-threads" in f.title
    # the registry's second pass is given the first pass's findings
    by_category = {x.category: x for x in analyze_run(run).findings}
    assert by_category["cpu-fp32-linear"].severity == "low"
    assert CpuFp32LinearAnalyzer().analyze(run)[0].severity == "high"  # without: uncapped


def test_without_shapes_parameter_dtypes_decide(tmp_path):
    events = [*profiler_steps(5000, 1), op("aten::linear", 100, 3000), op("aten::addmm", 101, 2998)]
    fp32 = make_run(
        tmp_path, events=events, child_info={"root_modules": [{"param_dtypes": ["float32"]}]}
    )
    (f,) = CpuFp32LinearAnalyzer().analyze(fp32)
    assert (f.severity, f.confidence) == ("high", 0.6)
    bf16 = make_run(
        tmp_path, events=events, child_info={"root_modules": [{"param_dtypes": ["bfloat16"]}]}
    )
    assert CpuFp32LinearAnalyzer().analyze(bf16) == []


@pytest.mark.slow  # one `dsprof run` (~5-30 s), shared per session with test_planted.py
def test_real_run_big_fp32_mlp_fires():
    run = planted_run("cpu_fp32_linear")
    (f,) = CpuFp32LinearAnalyzer().analyze(run)
    assert f.severity in ("medium", "high")
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["fp32_gemm_calls"] == 15  # 3 Linear x 5 traced steps
    assert str(ev["largest_gemm"]).startswith("aten::linear [64x")


@pytest.mark.slow  # one `dsprof run` (~5-30 s), shared per session with test_planted.py
def test_real_run_batch_one_is_not_an_int8_case():
    assert [
        f
        for f in CpuFp32LinearAnalyzer().analyze(planted_run("small_batch"))
        if f.severity != "low"
    ] == []


def test_real_gpu_trace_never_fires():
    run = gpu_trace_run()
    assert len(gemm_calls(run.traces[0])) > 100  # fp32 aten::linear/addmm on the CPU side
    assert CpuFp32LinearAnalyzer().analyze(run) == []
