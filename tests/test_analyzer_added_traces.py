"""The five real traces where a first diagnosis went wrong (shared traces README, "Added later"):
each diagnosed as the README describes, through the whole registry (`dsprof analyze`)."""

from __future__ import annotations

from trace_cache import findings, trace

from dsprof.core.findings import Finding, FindingsDocument

ALEXNET = "hta/benchmark_result_2869224_1695835535_trace.json.gz"
MTIA = "hta/mtia_rank_0.json.gz"
TIMESFORMER = "tracelens/facebook_timesformer-base-finetuned-k400__1016002.json.gz"
RESNET18_MI300X = "tracelens/train_resnet18.json.gz"
MI210_GPU_ONLY = "tracelens/gpu_only_trace.json.gz"


def _one(doc: FindingsDocument, category: str) -> Finding:
    (f,) = [f for f in doc.findings if f.category == category]
    return f


def _evidence(f: Finding) -> dict[str, object]:
    return {e.metric: e.value for e in f.evidence}


def _notices(doc: FindingsDocument) -> dict[str, str]:
    return {n.code: n.message for n in doc.notices}


def test_mtia_is_an_unsupported_device_and_nothing_is_blamed() -> None:
    """Device work in mtia_* categories: no GPU analyzer finds GPU work, no CPU analyzer
    blames the host (cpu-fp32-linear used to call the step fp32 CPU GEMM time)."""
    doc = findings(MTIA)
    assert doc.findings == []
    assert doc.analyzers_failed == {}
    notice = _notices(doc)["unsupported-device"]
    assert "MTIA" in notice and "mtia_runtime" in notice
    assert trace(MTIA).device.kind == "accelerator"


def test_alexnet_benchmark_is_one_time_initialisation() -> None:
    """No ProfilerStep: 43.3 s of 43.4 s are context creation and first calls; the findings
    judge the steady state after it, and nothing is blamed on kernel launches any more."""
    doc = findings(ALEXNET)
    notices = _notices(doc)
    assert "no-steps" in notices and "steady state" in notices["no-steps"]
    init = notices["init-excluded"]
    assert "cudaDeviceGetStreamPriorityRange" in init  # the first CUDA call: context creation
    assert "aten::conv2d (first call)" in init  # cuDNN set-up of the first convolution
    tf = trace(ALEXNET)
    assert tf.init.total_ns > 40e9 and tf.init.prefix_ns > 0.99 * (
        tf.init.trace_end_ns - tf.init.trace_start_ns
    )
    assert tf.window_ns < 0.2e9  # the steady state: the measured iterations
    for f in doc.findings:
        assert all(e.window in ("", "the steady state") for e in f.evidence), f.title
        assert "launch" not in str(_evidence(f).get("idle_cause", ""))


def test_timesformer_is_cpu_preprocessing_in_the_step() -> None:
    """218 ms of video decoding and image processing (Python, no recorded op) before the GPU
    works; the final 126 ms D2H copy waits while the GPU is busy and costs nothing."""
    doc = findings(TIMESFORMER)
    idle = _one(doc, "gpu-idle")
    ev = _evidence(idle)
    assert idle.severity == "high" and ev["idle_cause"] == "cpu work"
    assert 200 < float(ev["cpu_work_outside_ops_ms"]) < 230  # type: ignore[arg-type]
    assert idle.recipes == ["dataloader"]
    assert not [f for f in doc.findings if f.category == "host-sync"]
    attention = _one(doc, "memory-bandwidth-bound")
    assert attention.recipes[0] == "sdpa"  # unfused softmax attention


def test_resnet18_on_mi300x_is_allocator_churn() -> None:
    """1,360 synchronous hipFree calls (caching allocator off) under 98 % of the idle time."""
    doc = findings(RESNET18_MI300X)
    idle = _one(doc, "gpu-idle")
    ev = _evidence(idle)
    assert idle.severity == "high" and ev["idle_cause"] == "allocator"
    assert float(ev["idle_share_allocator"]) > 0.95  # type: ignore[arg-type]
    assert str(ev["idle_cause_calls"]).startswith("hipFree x1360")
    assert idle.recipes == ["alloc-conf"]
    assert ev["device"] == "AMD Instinct MI300X"
    assert trace(RESNET18_MI300X).device.kind == "rocm"
    assert "no-steps" in _notices(doc)


def test_mi210_gpu_only_trace_is_a_fusion_opportunity() -> None:
    """562 tiny kernels back to back on a GPU busy 87 %: fusion (low or medium), not a
    launch-bound GPU, and no idle problem."""
    doc = findings(MI210_GPU_ONLY)
    launch = _one(doc, "launch-overhead")
    assert launch.severity in ("low", "medium")
    assert "fusion opportunity" in launch.title
    assert "cuda-graphs" not in launch.recipes
    assert not [f for f in doc.findings if f.category == "gpu-idle"]
    assert trace(MI210_GPU_ONLY).device_name() == "AMD Instinct MI210"
