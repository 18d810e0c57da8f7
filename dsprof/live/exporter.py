"""`dsprof watch --metrics HOST:PORT`: the watch's latest numbers on a Prometheus /metrics page.

Served by prometheus-client from a custom collector that reads the watch's last snapshot (it
never samples at scrape time). Names follow the exporters a fleet already scrapes where they
measure the same thing, so existing dashboards and alerts work unchanged:

- GPU: the DCGM exporter's field names, units and labels (gpu, UUID, device, modelName,
  Hostname): DCGM_FI_DEV_GPU_UTIL (%), DCGM_FI_DEV_MEM_COPY_UTIL (%), DCGM_FI_DEV_FB_USED and
  DCGM_FI_DEV_FB_FREE (MiB), DCGM_FI_DEV_POWER_USAGE (W), DCGM_FI_DEV_SM_CLOCK (MHz),
  DCGM_FI_DEV_CLOCK_THROTTLE_REASONS (bitmask), DCGM_FI_PROF_PCIE_TX_BYTES / _RX_BYTES (bytes/s).
  The values come from NVML (what nvidia-smi reads), not from DCGM's profiling counters.
- requests: vLLM's metric scheme in the `dsprof:` namespace: dsprof:request_success_total,
  dsprof:e2e_request_latency_seconds and dsprof:request_queue_time_seconds (histograms),
  dsprof:num_requests_waiting.
- the process tree: Prometheus' process_* convention with a dsprof_ prefix (the exporter's own
  process_* metrics describe this watch, not the service).

A metric that was not collected is absent, never 0. docs/live.md has the table.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dsprof.core.errors import UsageError
from dsprof.live.watch import WatchSession, WatchSnapshot

MIB = 1024 * 1024

# (metric, gpu.parquet column, scale, help): the GPU gauges, DCGM exporter names and units
GPU_GAUGES: tuple[tuple[str, str, float, str], ...] = (
    ("DCGM_FI_DEV_GPU_UTIL", "util_gpu_pct", 1.0, "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "util_mem_pct", 1.0, "Memory utilization (in %)."),
    ("DCGM_FI_DEV_FB_USED", "mem_used_bytes", 1.0 / MIB, "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_POWER_USAGE", "power_w", 1.0, "Power draw (in W)."),
    ("DCGM_FI_DEV_SM_CLOCK", "sm_clock_mhz", 1.0, "SM clock frequency (in MHz)."),
    (
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
        "throttle_reasons",
        1.0,
        "Current clock throttle reasons (NVML bitmask).",
    ),
    (
        "DCGM_FI_PROF_PCIE_TX_BYTES",
        "pcie_tx_bytes_per_s",
        1.0,
        "PCIe transmit throughput (bytes/s, NVML).",
    ),
    (
        "DCGM_FI_PROF_PCIE_RX_BYTES",
        "pcie_rx_bytes_per_s",
        1.0,
        "PCIe receive throughput (bytes/s, NVML).",
    ),
)
GPU_LABELS = ("gpu", "UUID", "device", "modelName", "Hostname")
PROCESS_LABELS = ("pid", "service")

# every metric name the exporter may expose (the Grafana dashboard may use only these)
METRIC_NAMES: tuple[str, ...] = (
    *(m for m, _, _, _ in GPU_GAUGES),
    "DCGM_FI_DEV_FB_FREE",
    "dsprof_process_gpu_memory_used_bytes",
    "dsprof_process_up",
    "dsprof_process_cpu_percent",
    "dsprof_process_resident_memory_bytes",
    "dsprof_process_threads",
    "dsprof_process_count",
    "dsprof_process_start_time_seconds",
    "dsprof_system_cpu_percent",
    "dsprof_system_iowait_percent",
    "dsprof:request_success_total",
    "dsprof:request_failure_total",
    "dsprof:e2e_request_latency_seconds",
    "dsprof:request_queue_time_seconds",
    "dsprof:num_requests_waiting",
)


def _gpu_families(snap: WatchSnapshot, host: str) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    families = {m: GaugeMetricFamily(m, h, labels=GPU_LABELS) for m, _, _, h in GPU_GAUGES}
    free = GaugeMetricFamily(
        "DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", labels=GPU_LABELS
    )
    own = GaugeMetricFamily(
        "dsprof_process_gpu_memory_used_bytes",
        "GPU memory NVML attributes to the watched process tree.",
        labels=(*GPU_LABELS, *PROCESS_LABELS),
    )
    for row in snap.gpus:
        index = int(row.get("gpu_index", 0))
        name, uuid = snap.gpu_names.get(index, (f"GPU {index}", None))
        labels = [str(index), uuid or "", f"nvidia{index}", name, host]
        for metric, column, scale, _ in GPU_GAUGES:
            value = row.get(column)
            if value is not None:
                families[metric].add_metric(labels, float(value) * scale)
        used, total = row.get("mem_used_bytes"), row.get("mem_total_bytes")
        if used is not None and total is not None:
            free.add_metric(labels, (float(total) - float(used)) / MIB)
        if row.get("proc_mem_used_bytes") is not None:
            own.add_metric(
                [*labels, str(snap.target.pid), snap.target.label],
                float(row["proc_mem_used_bytes"]),
            )
    for family in (*families.values(), free, own):
        if family.samples:
            yield family


def _process_families(snap: WatchSnapshot) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    labels = [str(snap.target.pid), snap.target.label]

    def gauge(name: str, doc: str, value: float | None) -> Any:
        family = GaugeMetricFamily(name, doc, labels=PROCESS_LABELS)
        if value is not None:
            family.add_metric(labels, float(value))
        return family

    yield gauge(
        "dsprof_process_up", "1 while the watched process runs.", 1.0 if snap.alive else 0.0
    )
    yield gauge(
        "dsprof_process_start_time_seconds",
        "Start time of the watched process since the Unix epoch (s).",
        snap.target.create_time,
    )
    h = snap.host
    if h is None or not snap.alive:
        return
    yield gauge(
        "dsprof_process_cpu_percent",
        "CPU use of the process tree (100 = one core).",
        h.get("proc_cpu_pct"),
    )
    yield gauge(
        "dsprof_process_resident_memory_bytes",
        "Resident memory of the process tree (bytes).",
        h.get("proc_rss_bytes"),
    )
    yield gauge("dsprof_process_threads", "Threads of the process tree.", h.get("proc_threads"))
    yield gauge("dsprof_process_count", "Processes in the tree.", h.get("proc_count"))
    for name, column, doc in (
        ("dsprof_system_cpu_percent", "sys_cpu_pct", "CPU use of the machine (mean over CPUs, %)."),
        ("dsprof_system_iowait_percent", "sys_iowait_pct", "iowait of the machine (%)."),
    ):
        if h.get(column) is not None:
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], float(h[column]))
            yield family


def _request_families(snap: WatchSnapshot) -> Iterator[Any]:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    c = snap.counters
    if c is None or not snap.alive:
        return
    labels = [str(snap.target.pid), snap.target.label]
    ok = CounterMetricFamily(
        "dsprof:request_success", "Requests served without error.", labels=PROCESS_LABELS
    )
    ok.add_metric(labels, float(c.requests_total - c.errors_total))
    yield ok
    failed = CounterMetricFamily(
        "dsprof:request_failure", "Requests that failed.", labels=PROCESS_LABELS
    )
    failed.add_metric(labels, float(c.errors_total))
    yield failed
    for name, doc, hist in (
        (
            "dsprof:e2e_request_latency_seconds",
            "Request latency inside the service (s).",
            c.latency,
        ),
        ("dsprof:request_queue_time_seconds", "Time requests spent queued (s).", c.queue),
    ):
        if hist is None:
            continue
        family = HistogramMetricFamily(name, doc, labels=PROCESS_LABELS)
        buckets = [(f"{b:g}", float(n)) for b, n in zip(hist.bounds_s, hist.counts, strict=True)]
        buckets.append(("+Inf", float(hist.count)))
        family.add_metric(labels, buckets, hist.sum_s)
        yield family
    if c.waiting is not None:
        waiting = GaugeMetricFamily(
            "dsprof:num_requests_waiting", "Requests waiting in the queue.", labels=PROCESS_LABELS
        )
        waiting.add_metric(labels, float(c.waiting))
        yield waiting


class WatchCollector:
    """A prometheus-client collector over the watch's latest snapshot."""

    def __init__(self, session: WatchSession) -> None:
        self.session = session
        self.hostname = socket.gethostname()

    def collect(self) -> Iterator[Any]:
        snap = self.session.latest
        if snap is None:
            return
        yield from _process_families(snap)
        yield from _gpu_families(snap, self.hostname)
        yield from _request_families(snap)


@dataclass
class MetricsServer:
    """The running /metrics endpoint."""

    server: Any
    thread: Any
    url: str

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def parse_address(value: str) -> tuple[str, int]:
    """HOST:PORT, [::1]:PORT or PORT (127.0.0.1) -> (host, port)."""
    text = value.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--metrics wants HOST:PORT like 127.0.0.1:9400, not {value!r}")
    return host, int(port)


def serve_metrics(session: WatchSession, address: str) -> MetricsServer:
    """Start /metrics on address (its own registry, daemon thread)."""
    from prometheus_client import CollectorRegistry, start_http_server

    host, port = parse_address(address)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WatchCollector(session))  # type: ignore[arg-type]
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        raise UsageError(f"--metrics: cannot listen on {host}:{port}: {e.strerror}") from None
    bound = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    return MetricsServer(server, thread, f"http://{shown}:{bound}/metrics")
