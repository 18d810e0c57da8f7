"""dsprof.live's pure parts: durations, addresses, request arithmetic, NVML row selection, the
terminal view, the Prometheus exposition and the shipped Grafana dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from dsprof.core.errors import UsageError
from dsprof.core.live import HistogramCounts, RequestCounters
from dsprof.live.duration import parse_duration
from dsprof.live.exporter import METRIC_NAMES, WatchCollector, parse_address
from dsprof.live.gpu import select_rows
from dsprof.live.requests import (
    LATENCY_BUCKETS_S,
    RequestStats,
    bucket_quantile,
    request_window,
)
from dsprof.live.target import Target, command_label
from dsprof.live.view import render, util_style
from dsprof.live.watch import WatchSnapshot

ROOT = Path(__file__).parent.parent
DASHBOARD = ROOT / "dsprof" / "live" / "grafana" / "dsprof-live.json"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60", 60.0), ("60s", 60.0), ("500ms", 0.5), ("2m", 120.0), ("1.5h", 5400.0), (" 3S ", 3.0)],
    ids=["bare", "s", "ms", "m", "h", "case"],
)
def test_durations(text, seconds):
    assert parse_duration(text, "--for") == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "abc", "-1s", "0", "5x"], ids=["empty", "word", "neg", "0", "unit"]
)
def test_bad_durations_name_the_option(text):
    with pytest.raises(UsageError, match="--for"):
        parse_duration(text, "--for")


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:9400", ("127.0.0.1", 9400)),
        ("9400", ("127.0.0.1", 9400)),
        ("[::1]:9400", ("::1", 9400)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
    ids=["v4", "port-only", "v6", "any"],
)
def test_metrics_addresses(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize(
    "text", ["127.0.0.1:", "host:abc", "1.2.3.4:70000"], ids=["no-port", "word", "range"]
)
def test_bad_metrics_addresses(text):
    with pytest.raises(UsageError, match="--metrics"):
        parse_address(text)


@pytest.mark.parametrize(
    ("argv", "label"),
    [
        (("/usr/bin/python3", "examples/serve_bert.py", "--port", "1"), "serve_bert"),
        (("python", "-u", "-m", "pkg.app", "--x"), "app"),
        (("/venv/bin/uvicorn", "app:api"), "uvicorn"),
        ((), ""),
    ],
    ids=["script", "module", "console-script", "empty"],
)
def test_command_labels(argv, label):
    assert command_label(argv) == label


def test_bucket_quantile_interpolates_like_histogram_quantile():
    # 100 requests spread evenly over (0, 10 ms] in buckets of 5 and 10 ms: the median is 5 ms
    bounds, cumulative = [0.005, 0.01, 0.02], [50, 100, 100]
    assert bucket_quantile(0.5, bounds, cumulative, 100) == pytest.approx(0.005)
    assert bucket_quantile(0.75, bounds, cumulative, 100) == pytest.approx(0.0075)
    assert bucket_quantile(0.99, bounds, cumulative, 100) == pytest.approx(0.0099)
    assert bucket_quantile(0.5, bounds, [0, 0, 0], 0) is None
    # a rank in +Inf answers the highest finite bound (a lower bound, as Prometheus does)
    assert bucket_quantile(0.99, bounds, [0, 0, 10], 100) == pytest.approx(0.02)


def test_request_stats_give_rate_and_percentiles_over_a_window():
    rng = np.random.default_rng(0)
    latencies = rng.lognormal(np.log(0.02), 0.5, 2000)  # ~20 ms median
    stats = RequestStats()
    before = stats.snapshot().model_copy(update={"ts_ns": 0})
    for i, s in enumerate(latencies):
        stats.record(float(s), queue_s=float(s) / 4, ok=i % 100 != 0)
    after = stats.snapshot().model_copy(update={"ts_ns": 4_000_000_000})
    w = request_window(before, after)
    assert w is not None
    assert w.requests == 2000 and w.rate_per_s == pytest.approx(500.0)
    assert w.error_share == pytest.approx(0.01)
    # buckets bound the error: the true percentile lies within the bucket the estimate is in
    for q, estimate in ((0.5, w.p50_s), (0.99, w.p99_s)):
        truth = float(np.quantile(latencies, q))
        i = int(np.searchsorted(LATENCY_BUCKETS_S, truth))
        lo = LATENCY_BUCKETS_S[i - 1] if i else 0.0
        assert estimate is not None and lo <= estimate <= LATENCY_BUCKETS_S[i], (q, truth, estimate)
    assert w.queue_p50_s is not None and w.queue_p50_s < w.p50_s


def test_a_restarted_service_does_not_give_negative_rates():
    hist = HistogramCounts(bounds_s=[0.01, 0.1], counts=[5, 10], count=10, sum_s=0.3)
    before = RequestCounters(ts_ns=0, requests_total=500, latency=hist)
    after = RequestCounters(ts_ns=10**9, requests_total=10, latency=hist)
    w = request_window(before, after)
    assert w is not None and w.requests == 10 and w.rate_per_s == 10.0


def _gpu_row(index: int, **extra: float) -> dict[str, float]:
    # the fields NvmlSampler writes for one GPU (dsprof.collectors.nvml), H100-like values
    row = {
        "ts_ns": 1_000,
        "gpu_index": index,
        "util_gpu_pct": 81.0,
        "util_mem_pct": 40.0,
        "mem_used_bytes": 20 * 2**30,
        "mem_total_bytes": 80 * 2**30,
        "power_w": 350.5,
        "sm_clock_mhz": 1980.0,
        "throttle_reasons": 0,
    }
    row.update(extra)
    return row


def test_nvml_rows_are_the_gpus_the_tree_uses_with_its_own_memory():
    rows = [_gpu_row(0), _gpu_row(1), _gpu_row(2)]
    use = {0: [(999, 5 * 2**30)], 1: [(10, 2**30), (11, None)], 2: [(12, 3 * 2**30), (13, 2**30)]}
    kept, note = select_rows(rows, use, pids=[10, 11, 12, 13])
    assert note is None
    assert [r["gpu_index"] for r in kept] == [1, 2]
    assert kept[0]["proc_mem_used_bytes"] == 2**30  # 11's memory is unknown: not counted as 0
    assert kept[1]["proc_mem_used_bytes"] == 4 * 2**30
    assert "proc_mem_used_bytes" not in rows[1]  # the sampler's rows are not changed


def test_nvml_rows_when_no_gpu_lists_the_tree_keep_all_with_a_note():
    rows = [_gpu_row(0)]
    kept, note = select_rows(rows, {0: [(999, 2**30)]}, pids=[10])
    assert kept == rows and note is not None and "every GPU" in note
    assert select_rows([], {}, pids=[10]) == ([], None)


def _snapshot(gpus: list[dict[str, float]], counters: RequestCounters | None) -> WatchSnapshot:
    return WatchSnapshot(
        ts_ns=2_000,
        elapsed_s=12.0,
        target=Target(4242, "python3", ("python", "serve.py"), "/srv", 1.7e9),
        alive=True,
        host={
            "proc_cpu_pct": 150.0,
            "proc_rss_bytes": 3 * 2**30,
            "proc_threads": 40,
            "proc_count": 2,
            "sys_cpu_pct": 60.0,
            "sys_iowait_pct": 1.0,
        },
        gpus=gpus,
        gpu_names={0: ("NVIDIA H100 80GB HBM3", "GPU-aaaa"), 1: ("NVIDIA H100 80GB HBM3", None)},
        counters=counters,
        requests=None,
        notes=["nvml: a note"],
    )


def _scrape(snap: WatchSnapshot) -> dict[str, list]:
    class Session:
        latest = snap

    registry = CollectorRegistry(auto_describe=False)
    registry.register(WatchCollector(Session()))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_prometheus_gpu_metrics_use_dcgm_names_and_units():
    rows = [_gpu_row(0, proc_mem_used_bytes=2**30), _gpu_row(1, util_gpu_pct=95.0)]
    families = _scrape(_snapshot(rows, None))
    util = {s.labels["gpu"]: s.value for s in families["DCGM_FI_DEV_GPU_UTIL"]}
    assert util == {"0": 81.0, "1": 95.0}
    (used,) = [s for s in families["DCGM_FI_DEV_FB_USED"] if s.labels["gpu"] == "0"]
    assert used.value == 20 * 1024  # MiB, as DCGM
    assert {s.value for s in families["DCGM_FI_DEV_FB_FREE"]} == {60 * 1024}
    assert used.labels["modelName"] == "NVIDIA H100 80GB HBM3" and used.labels["UUID"] == "GPU-aaaa"
    assert used.labels["device"] == "nvidia0" and used.labels["Hostname"]
    (own,) = families["dsprof_process_gpu_memory_used_bytes"]
    assert own.value == 2**30 and own.labels["pid"] == "4242" and own.labels["service"] == "serve"
    # the parser drops the _total suffix from family names: compare on exposed names
    exposed = {s.name for samples in families.values() for s in samples}
    unknown = {
        n
        for n in exposed
        if n not in METRIC_NAMES and re.sub(r"_(bucket|count|sum)$", "", n) not in METRIC_NAMES
    }
    assert unknown == set()


def test_prometheus_without_gpu_or_requests_leaves_them_absent():
    families = _scrape(_snapshot([], None))
    assert not [n for n in families if n.startswith("DCGM")]
    assert not [n for n in families if n.startswith("dsprof:")]
    cpu = families["dsprof_process_cpu_percent"][0]
    assert cpu.value == 150.0
    assert families["dsprof_process_up"][0].value == 1.0


def test_prometheus_request_metrics_follow_vllm_names():
    stats = RequestStats()
    for s in (0.004, 0.02, 0.02, 0.3):
        stats.record(s, queue_s=0.001)
    stats.record(0.05, ok=False)
    families = _scrape(_snapshot([], stats.snapshot()))
    assert families["dsprof:request_success"][0].value == 4.0
    assert families["dsprof:request_failure"][0].value == 1.0
    lat = {s.name: s for s in families["dsprof:e2e_request_latency_seconds"]}
    assert lat["dsprof:e2e_request_latency_seconds_count"].value == 5.0
    assert lat["dsprof:e2e_request_latency_seconds_sum"].value == pytest.approx(0.394)
    buckets = {
        s.labels["le"]: s.value
        for s in families["dsprof:e2e_request_latency_seconds"]
        if s.name.endswith("_bucket")
    }
    assert buckets["0.005"] == 1.0 and buckets["0.02"] == 3.0 and buckets["+Inf"] == 5.0
    assert families["dsprof:request_queue_time_seconds"]


def test_view_says_where_gpu_utilisation_stands_against_the_band():
    assert util_style(60.0)[0] == "yellow" and "below" in util_style(60.0)[1]
    assert util_style(80.0)[0] == "green"
    assert util_style(95.0)[0] == "red"
    stats = RequestStats()
    stats.record(0.02)
    console = Console(record=True, width=120)
    console.print(render(_snapshot([_gpu_row(0)], stats.snapshot()), for_s=60))
    text = console.export_text()
    for words in ("PID 4242", "serve", "150 %", "3.0 GiB", "81 %", "in the 75-90 % band",
                  "20.0 GiB / 80.0 GiB", "350 W", "1 so far", "12 s of 60 s", "a note"):  # fmt: skip
        assert words in text, words


def test_grafana_dashboard_uses_only_exported_metrics():
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", []) if "expr" in t]
    assert len(exprs) >= 8
    names = set()
    for e in exprs:
        names |= set(re.findall(r"\b(DCGM_[A-Z_]+|dsprof[:_][a-z0-9_:]+)", e))
    known = set(METRIC_NAMES) | {f"{n}_bucket" for n in METRIC_NAMES}
    known |= {f"{n}_{s}" for n in METRIC_NAMES for s in ("count", "sum")}
    assert names and names <= known, names - known
    # a fleet: every panel can be narrowed to services by Prometheus' instance/job labels
    variables = {v["name"] for v in doc["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= variables
    assert all("$instance" in e or "instance=~" in e for e in exprs), exprs


def test_dsprof_never_changes_gpu_settings():
    """NVML is read-only everywhere in dsprof: no nvmlDeviceSet* call (or reference) in code."""
    changing = r"nvmlDevice(Set|Reset|Clear)"
    call = re.compile(rf"\b{changing}\w*\s*\(|\.{changing}|[\"']{changing}|import[^\n]*{changing}")
    offenders = [p for p in (ROOT / "dsprof").rglob("*.py") if call.search(p.read_text())]
    assert offenders == []


def test_request_counters_from_a_services_own_prometheus_histogram():
    """vLLM-style /metrics, produced by prometheus-client itself and read back."""
    from prometheus_client import Gauge, Histogram

    from dsprof.live.service_metrics import counters_from_text

    registry = CollectorRegistry()
    e2e = Histogram(
        "vllm:e2e_request_latency_seconds",
        "e2e",
        ["model_name"],
        buckets=(0.3, 0.5, 1.0, 2.5),
        registry=registry,
    )
    other = Histogram("http_request_duration_seconds", "http", registry=registry)
    Gauge("vllm:num_requests_waiting", "w", ["model_name"], registry=registry).labels("m").set(3)
    for s in (0.2, 0.4, 0.4, 0.9, 3.0):
        e2e.labels("m").observe(s)
    e2e.labels("n").observe(0.1)  # label sets are summed
    other.observe(0.05)
    text = generate_latest(registry).decode()
    c = counters_from_text(text)
    assert c is not None and c.requests_total == 6 and c.waiting == 3
    assert c.latency.bounds_s == [0.3, 0.5, 1.0, 2.5] and c.latency.counts == [2, 4, 5, 5]
    assert c.latency.sum_s == pytest.approx(5.0)
    named = counters_from_text(text, "http_request_duration_seconds")
    assert named is not None and named.requests_total == 1
    assert counters_from_text(text, "no_such_histogram") is None
    assert counters_from_text("# nothing here\n") is None


def test_the_model_is_a_module_called_twice_on_one_thread_not_layers_caught_mid_call():
    """A capture installed while four threads are inside a model call sees that call's remaining
    layers as outermost calls, once per thread: the same Linear on each. Counted together they
    made the Linear "the model" (never called as a root again: the window ran to its timeout);
    the model is the module object called twice on one thread."""
    import threading

    import torch

    from dsprof.live.capture import _StepWatch

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    watch = _StepWatch(None)
    all_in = threading.Barrier(4, timeout=30)

    def caught_mid_call() -> None:
        with watch.call_context(model[2]):  # the rest of a call that began before the install
            all_in.wait()  # the four threads are in their calls at once, as in a thread pool

    threads = [threading.Thread(target=caught_mid_call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert watch.model is None and not watch.model_known.is_set()
    for _ in range(2):  # the next calls on one thread are whole model calls
        with watch.call_context(model):
            pass
    assert watch.model == "Sequential" and watch.model_known.is_set()
