"""gpu-idle: the host time under the GPU's idle gaps, split into measured causes (exact on
synthetic traces, CUDA and HIP names alike), and the causes on real traces."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from trace_cache import findings
from trace_synthetic import TraceBuilder, trace_run

from dsprof.analyzers.gpu_idle import CAUSE_RECIPES, GpuIdleAnalyzer
from dsprof.trace import load_trace

DL = "enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__"


def _launch(tb: TraceBuilder) -> None:
    # an op that dispatches for 480 us and then launches k2
    tb.op("aten::mul", 110, 490)
    tb.kernel("k2", 600, 400, launch_ts=590, launch_dur=5)


def _allocator(tb: TraceBuilder) -> None:
    tb.op("aten::miopen_convolution", 105, 490)
    tb.span("cuda_runtime", "hipFree", 110, 460)  # ROCm without the caching allocator
    tb.kernel("k2", 600, 400, launch_ts=590, launch_dur=5, launch="hipLaunchKernel")


def _data_loading(tb: TraceBuilder) -> None:
    tb.span("user_annotation", DL, 110, 470)
    tb.runtime("cudaHostAlloc", 200, 100)  # inside the fetch: still data loading
    tb.kernel("k2", 600, 400, launch_ts=590)


def _sync(tb: TraceBuilder) -> None:
    tb.runtime("hipStreamSynchronize", 110, 470)  # waits on work the trace does not show
    tb.kernel("k2", 600, 400, launch_ts=590)


def _cpu_ops(tb: TraceBuilder) -> None:
    tb.op("aten::copy_", 110, 470)  # CPU tensors: no launch inside
    tb.kernel("k2", 600, 400, launch_ts=590)


def _python(tb: TraceBuilder) -> None:
    tb.kernel("k2", 600, 400, launch_ts=590)  # nothing recorded between: Python


SCENARIOS: dict[str, tuple[Callable[[TraceBuilder], None], str, str]] = {
    # name: (how the gap is filled, headline cause, the per-cause evidence that carries it)
    "launch": (_launch, "launch", "idle_share_launch"),
    "allocator": (_allocator, "allocator", "idle_share_allocator"),
    "data loading": (_data_loading, "data loading", "idle_share_data_loading"),
    "sync": (_sync, "sync", "idle_share_sync"),
    "cpu ops": (_cpu_ops, "cpu work", "idle_share_cpu_work"),
    "python": (_python, "cpu work", "idle_share_cpu_work"),
}


def _trace(tmp_path: Path, scenario: str) -> Path:
    """One 1000 us step; kernels busy [0,100) and [600,1000): a 500 us gap filled by `scenario`."""
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel("k1", 0, 100, launch_ts=0, launch_dur=5)
    SCENARIOS[scenario][0](tb)
    return tb.write(tmp_path / f"{scenario.replace(' ', '_')}.json")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_gap_cause_is_measured(tmp_path: Path, scenario: str) -> None:
    (f,) = GpuIdleAnalyzer().analyze(trace_run(_trace(tmp_path, scenario)))
    _, cause, share_metric = SCENARIOS[scenario]
    ev = {e.metric: e.value for e in f.evidence}
    assert f.category == "gpu-idle" and f.severity == "high"  # 50 % is IDLE_HIGH
    assert f.impact == pytest.approx(0.5)
    assert ev["idle_cause"] == cause
    assert ev[share_metric] >= 0.9
    assert ev["gpu_idle_ms"] == pytest.approx(0.5)
    assert f.recipes == CAUSE_RECIPES[cause]


def test_causes_sum_to_the_idle_time(tmp_path: Path) -> None:
    tf = load_trace(_trace(tmp_path, "allocator"))
    idle = tf.idle
    assert idle is not None
    assert idle.idle_ns == 500_000
    assert sum(idle.total(c) for c in idle.by_cause) == 500_000
    assert idle.total("allocator") == 460_000  # hipFree covers 110-570 us
    assert idle.top_calls("allocator") == [("hipFree", 1, 460_000)]


def test_short_gaps_are_launch_latency(tmp_path: Path) -> None:
    """Python between two launches inside a gap under SHORT_GAP_NS is launch overhead."""
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    for i in range(10):  # 10 us kernels every 100 us: 90 us gaps with nothing recorded
        tb.kernel(f"k{i}", 100 * i, 10, launch_ts=100 * i - 20)
    tf = load_trace(tb.write(tmp_path / "t.json"))
    assert tf.idle is not None
    assert tf.idle.total("python") == 0 and tf.idle.total("launch") == tf.idle.idle_ns


def test_busy_gpu_is_not_flagged(tmp_path: Path) -> None:
    tb = TraceBuilder()
    tb.step(1, 0, 1000)
    tb.kernel("k", 0, 800, launch_ts=0)  # 20 % idle < IDLE_MEDIUM
    assert GpuIdleAnalyzer().analyze(trace_run(tb.write(tmp_path / "t.json"))) == []


def test_cpu_only_trace_is_not_flagged(tmp_path: Path) -> None:
    tb = TraceBuilder(gpu=False)
    tb.step(1, 0, 1000)
    tb.op("aten::add", 10, 5)
    assert GpuIdleAnalyzer().analyze(trace_run(tb.write(tmp_path / "cpu.json"))) == []


def test_one_time_init_is_cut_from_a_trace_without_steps(tmp_path: Path) -> None:
    """30 ms of context creation (the first CUDA call), then 10 identical 1 ms iterations that
    keep the GPU 80 % busy: the steady state is judged, and it is healthy."""
    tb = TraceBuilder()
    tb.runtime("cudaDeviceGetStreamPriorityRange", 0, 30_000)
    tb.runtime("cudaMalloc", 30_000, 5)
    for i in range(10):
        t = 30_100 + 1000 * i
        tb.runtime("cudaDeviceGetStreamPriorityRange", t, 1)
        tb.kernel(f"k{i}", t + 100, 800, launch_ts=t + 20)
    tf = load_trace(tb.write(tmp_path / "t.json"))
    assert tf.init.cut_ns is not None
    assert tf.window_label == "the steady state"
    assert GpuIdleAnalyzer().analyze(trace_run(tmp_path / "t.json")) == []


def test_init_inside_the_window_is_shown_not_graded(tmp_path: Path) -> None:
    """A step whose idle time is the first call of an op (cuDNN set-up): named, graded low."""
    tb = TraceBuilder()
    tb.step(1, 0, 10_000)
    tb.op("aten::conv2d", 0, 6000, **{"Input Dims": [[1, 3, 8, 8]]})  # first call: 6 ms
    tb.kernel("c0", 6000, 100, launch_ts=5990)
    for i in range(3):  # later calls of the same op and shapes: 100 us
        t = 6200 + 1000 * i
        tb.op("aten::conv2d", t, 100, **{"Input Dims": [[1, 3, 8, 8]]})
        tb.kernel(f"c{i + 1}", t + 100, 900, launch_ts=t + 90)
    tf = load_trace(tb.write(tmp_path / "t.json"))
    assert tf.init.cut_ns is None  # steps: the window stays the step
    assert tf.idle is not None and tf.idle.total("init") >= 5_900_000
    assert GpuIdleAnalyzer().analyze(trace_run(tmp_path / "t.json")) == []  # ~0.7 % recurring


@pytest.mark.parametrize(
    ("rel", "cause", "recipes"),
    [
        ("tracelens/google_owlv2-large-patch14-ensemble__1016001.json.gz", "data loading",
         ["dataloader"]),
        ("param/resnet_kineto.json.gz", "data loading", ["dataloader"]),
        ("hta/rank0.json.gz", "sync", []),
        ("tracelens/facebook_timesformer-base-finetuned-k400__1016002.json.gz", "cpu work",
         ["dataloader"]),
        ("tracelens/train_resnet18.json.gz", "allocator", ["alloc-conf"]),
        ("tracelens/eager_trace.json.gz", "launch", ["cuda-graphs", "compile"]),
    ],
    ids=["owlv2", "resnet-param", "hta-rank0", "timesformer", "mi300x-resnet18", "b200-eager"],
)  # fmt: skip
def test_real_traces(rel: str, cause: str, recipes: list[str]) -> None:
    (f,) = [f for f in findings(rel).findings if f.category == "gpu-idle"]
    assert f.severity == "high"
    assert {e.metric: e.value for e in f.evidence}["idle_cause"] == cause
    assert f.recipes == recipes


def test_allocator_churn_names_the_calls() -> None:
    """MI300X ResNet-18 without the caching allocator: 1,360 hipFree calls under the gaps."""
    (f,) = [
        f for f in findings("tracelens/train_resnet18.json.gz").findings
        if f.category == "gpu-idle"
    ]  # fmt: skip
    ev = {e.metric: e.value for e in f.evidence}
    assert str(ev["idle_cause_calls"]).startswith("hipFree x1360")
    assert ev["idle_share_allocator"] > 0.9
    assert ev["device"] == "AMD Instinct MI300X"  # kernels say device 2; deviceProperties 0-7
