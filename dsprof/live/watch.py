"""`dsprof watch`: read-only sampling of a running process tree and its GPUs, and its snapshot.

Nothing is changed in the target: psutil reads /proc, NVML is queried read-only, and the on-demand
agent, when the service runs one, is only asked for its request counters. The samplers are the
collectors of `dsprof run` (HostSampler on the tree, NVML through ProcessGpuSampler) on their
niced threads in this process. `snapshot()` gives the latest numbers (the live view and /metrics
read it); `write_run()` turns what was sampled into a run folder (kind "watch", no trace) that
the host-side analyzers and the report read.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsprof.core.findings import FindingsDocument
from dsprof.core.live import RequestCounters
from dsprof.core.manifest import CollectorStatus, RunManifest
from dsprof.live import control
from dsprof.live.requests import RequestWindow, request_window
from dsprof.live.target import Target, is_alive, tree_pids
from dsprof.store.documents import write_model
from dsprof.store.layout import RunPaths

# the serving band of GPU utilisation: below it the GPU waits (host-bound work, small batches),
# above it requests queue (the band of issue 15 and of `dsprof load --slo gpu-util=75..90`)
GPU_UTIL_BAND = (75.0, 90.0)
# request rate and latency are read over this sliding window
REQUEST_WINDOW_S = 10.0
# how often a missing agent is looked for again (a service may opt in after the watch starts)
AGENT_RETRY_S = 10.0
# without --for, only this many samples per sampler stay in memory (a watch may run for days)
KEEP_ROWS = 1200


@dataclass
class WatchSnapshot:
    """The latest numbers of a watch."""

    ts_ns: int
    elapsed_s: float
    target: Target
    alive: bool
    host: dict[str, Any] | None
    gpus: list[dict[str, Any]]
    gpu_names: dict[int, tuple[str, str | None]]
    counters: RequestCounters | None
    requests: RequestWindow | None
    notes: list[str] = field(default_factory=list)


class WatchSession:
    """Samples target's tree (and GPUs) until stop(); see the module docstring."""

    def __init__(
        self,
        target: Target,
        hz: float = 2.0,
        keep_all: bool = False,
        service_metrics: str | None = None,
        latency_metric: str | None = None,
    ) -> None:
        from dsprof.collectors import host, nvml
        from dsprof.collectors.sampler import PeriodicSampler

        self.target = target
        self.hz = hz
        self.keep_all = keep_all
        self.start_ns = time.time_ns()
        self._t0 = time.monotonic()
        self._started = False
        self.status: dict[str, CollectorStatus] = {}
        self.notes: list[str] = []
        self.host = PeriodicSampler("host", host.HostSampler(target.pid).sample, hz)
        self.gpu: Any = None
        self._gpu_sampler: Any = None
        self.gpu_names: dict[int, tuple[str, str | None]] = {}
        ok, reason = nvml.available()
        if ok:
            try:
                from dsprof.live.gpu import ProcessGpuSampler

                self._gpu_sampler = ProcessGpuSampler(target.pid)
                self.gpu = PeriodicSampler("nvml", self._gpu_sampler.sample, hz)
                _, infos = nvml.device_info()
                self.gpu_names = {int(g["index"]): (str(g["name"]), g.get("uuid")) for g in infos}
            except Exception as e:  # a driver that loads but fails: a note, the watch goes on
                self.status["nvml"] = CollectorStatus(
                    ok=False, reason=f"NVML failed to open: {e!r}"
                )
        else:
            self.status["nvml"] = CollectorStatus(ok=False, reason=reason)
        # the service's own /metrics, read instead of asking its dsprof agent
        self.service_metrics = service_metrics
        self.latency_metric = latency_metric
        self.counter_rows: list[dict[str, Any]] = []
        self._counters: deque[RequestCounters] = deque()
        self._agent: control.AgentConnection | None = None
        self._agent_next_try = 0.0
        self._requests_note: str | None = None
        # the service's torch and CPU facts from its agent (child.json of the watch's run)
        self.service_facts: dict[str, Any] | None = None
        self.end_reason: str | None = None
        # the last snapshot (the /metrics collector reads it; it never samples itself)
        self.latest: WatchSnapshot | None = None

    def start(self) -> None:
        self._started = True
        self.host.start()
        if self.gpu is not None:
            self.gpu.start()

    def stop(self) -> None:
        """Stop the samplers (when started) and release NVML and the agent's connection."""
        if self._started:
            self._started = False
            self.host.stop()
            if self.gpu is not None:
                self.gpu.stop()
        if self._gpu_sampler is not None:
            self._gpu_sampler.close()
            self._gpu_sampler = None
        if self._agent is not None:
            self._agent.close()
            self._agent = None

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._t0

    def alive(self) -> bool:
        return is_alive(self.target.pid, self.target.create_time)

    # -- the service's own request counters: its /metrics, or its agent ----------------------
    def _poll_service_metrics(self, url: str) -> RequestCounters | None:
        from dsprof.core.errors import UsageError
        from dsprof.live.service_metrics import fetch_counters

        try:
            counters = fetch_counters(url, self.latency_metric)
        except UsageError as e:
            self._requests_note = f"request counters: {e}"
            return None
        self._requests_note = (
            None
            if counters is not None
            else f"request counters: no request-latency histogram at {url} (name one with "
            "--latency-metric)"
        )
        return counters

    def _poll_agent(self) -> RequestCounters | None:
        now = time.monotonic()
        if self._agent is None and now >= self._agent_next_try:
            self._agent_next_try = now + AGENT_RETRY_S
            try:
                found = control.choose_agent(
                    self.target.pid, control.find_sockets(tree_pids(self.target.pid))
                )
            except control.ControlError as e:
                self._requests_note = f"request counters: {e}"
                return None
            if found is None:
                self._requests_note = (
                    "request rate and latency: the service reports none (it runs no dsprof "
                    "agent: dsprof.serve_on_demand() or dsprof run --on-demand)"
                )
                return None
            try:
                self._agent = control.AgentConnection.open(found[1], found[0])
                hello = self._agent.hello()
                self.service_facts = hello.get("facts") or self.service_facts
            except (control.ControlError, OSError) as e:
                self._requests_note = f"request counters: {e}"
                self._agent = None
                return None
        if self._agent is None:
            return None
        try:
            answer = self._agent.request({"op": "stats"}, timeout_s=2.0)
        except (control.ControlError, OSError, TimeoutError, ValueError) as e:
            self._requests_note = f"request counters: the agent stopped answering ({e})"
            self._agent.close()
            self._agent = None
            # a slow answer (the service busy behind its GIL) is no missing agent: look again
            # at the next refresh, not AGENT_RETRY_S later
            self._agent_next_try = time.monotonic()
            return None
        raw = answer.get("counters")
        if raw is None:
            self._requests_note = "request counters: the agent has none"
            return None
        self._requests_note = None
        counters = RequestCounters.model_validate(raw)
        if counters.requests_total == 0 and not self._counters:
            self._requests_note = (
                "request counters: none reported yet (dsprof's DynamicBatcher reports its "
                "requests; other services call dsprof.live.record_request)"
            )
        return counters

    def _request_window(self, counters: RequestCounters | None) -> RequestWindow | None:
        if counters is None:
            return None
        self._counters.append(counters)
        horizon = counters.ts_ns - int(REQUEST_WINDOW_S * 1e9)
        while len(self._counters) > 2 and self._counters[1].ts_ns <= horizon:
            self._counters.popleft()
        self.counter_rows.append(_counter_row(counters))
        if not self.keep_all:
            del self.counter_rows[:-KEEP_ROWS]
        return request_window(self._counters[0] if len(self._counters) > 1 else None, counters)

    # -- what the view and /metrics read ------------------------------------------------
    def snapshot(self) -> WatchSnapshot:
        """The latest sample of everything; also polls the agent once."""
        if not self.keep_all:
            for s in (self.host, self.gpu):
                if s is not None and len(s.rows) > KEEP_ROWS:
                    del s.rows[:-KEEP_ROWS]  # atomic under the GIL against the sampler's extend
        alive = self.alive()
        counters = None
        if alive:
            counters = (
                self._poll_service_metrics(self.service_metrics)
                if self.service_metrics
                else self._poll_agent()
            )
        notes = list(self.notes)
        notes += [f"{k}: {v.reason}" for k, v in self.status.items() if not v.ok]
        if self._gpu_sampler is not None and self._gpu_sampler.note:
            notes.append(self._gpu_sampler.note)
        if self._requests_note:
            notes.append(self._requests_note)
        snap = WatchSnapshot(
            ts_ns=time.time_ns(),
            elapsed_s=self.elapsed_s,
            target=self.target,
            alive=alive,
            host=self.host.rows[-1] if self.host.rows else None,
            gpus=_latest_per_gpu(self.gpu.rows if self.gpu is not None else []),
            gpu_names=self.gpu_names,
            counters=counters,
            requests=self._request_window(counters),
            notes=notes,
        )
        self.latest = snap
        return snap

    # -- the run folder of `dsprof watch --for` -----------------------------------------
    def write_run(
        self, paths: RunPaths, manifest: RunManifest, interrupted: bool, analyze: bool = True
    ) -> tuple[RunManifest, FindingsDocument]:
        """host.parquet, gpu.parquet, service_requests.parquet, run.json, then the findings."""
        from dsprof.collectors.base import Samples
        from dsprof.collectors.host import HostCollector
        from dsprof.collectors.nvml import NvmlCollector
        from dsprof.runner import finalize

        # the watch's own samplers (NVML per process of the tree) in the collectors' shape
        samples = [
            Samples.absent(NvmlCollector, s.reason) for k, s in self.status.items() if k == "nvml"
        ]
        samples.append(
            Samples.of(HostCollector, self.host.rows, self.host.errors, self.host.last_error)
        )
        if self.gpu is not None:
            samples.append(
                Samples.of(NvmlCollector, self.gpu.rows, self.gpu.errors, self.gpu.last_error)
            )
        finalize.write_parquet(self.counter_rows, paths.service_requests, ("ts_ns",))
        if self.service_facts:
            # what the service's agent said of its torch and CPUs: cpu-threads reads it
            from dsprof.core.child import ChildInfo

            facts = ChildInfo.model_validate(self.service_facts)
            write_model(paths.child_info, facts, lenient=True)
        result = finalize.finish_run(
            paths,
            manifest,
            0,
            interrupted=interrupted,
            samples=samples,
            write_manifest=False,  # completed below
        )
        final: RunManifest = result.manifest
        final.collectors["torch_profiler"] = CollectorStatus(
            ok=False, reason="dsprof watch records no trace (dsprof trace PID takes one)"
        )
        final.collectors.pop("cuda_memory", None)
        final.collectors["service_requests"] = CollectorStatus(
            ok=bool(self.counter_rows),
            reason="" if self.counter_rows else (self._requests_note or "no request counters"),
            detail={"samples": len(self.counter_rows)},
        )
        if self.end_reason is not None:
            final.error = self.end_reason
        write_model(paths.manifest, final)
        from dsprof.analyzers import write_findings

        return final, write_findings(paths.root, analyze=analyze)


def _counter_row(c: RequestCounters) -> dict[str, Any]:
    row: dict[str, Any] = {
        "ts_ns": c.ts_ns,
        "requests_total": c.requests_total,
        "errors_total": c.errors_total,
        "latency_sum_s": c.latency.sum_s,
    }
    if c.waiting is not None:
        row["waiting"] = c.waiting
    # cumulative bucket counts, one column per bound: le_0.005 ... (Prometheus' own layout)
    for bound, count in zip(c.latency.bounds_s, c.latency.counts, strict=True):
        row[f"latency_le_{bound:g}_s"] = count
    return row


def _latest_per_gpu(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last row of each GPU index in the sampler's rows (rows of one sample share ts_ns)."""
    latest: dict[int, dict[str, Any]] = {}
    for row in reversed(rows[-64:]):
        latest.setdefault(int(row.get("gpu_index", 0)), row)
    return [latest[k] for k in sorted(latest)]


def watch_manifest(paths: RunPaths, target: Target, options: dict[str, Any]) -> RunManifest:
    """The run.json a `dsprof watch --for` starts with."""
    from dsprof.collectors.environment import collect_environment

    return RunManifest(
        run_id=paths.root.name,
        kind="watch",
        argv=list(target.cmdline),
        target=target.label,
        cwd=target.cwd or os.getcwd(),
        start_ns=time.time_ns(),
        environment=collect_environment(),
        options={"pid": target.pid, "warmup_steps": 0, **options},
    )


def create_watch_folder(out: Path, target: Target, name: str | None) -> RunPaths:
    """A new run folder for the watch (before sampling starts: a Ctrl-C still leaves one)."""
    from dsprof.store.run_store import create_run_folder

    paths = create_run_folder(out, name or f"{target.label}-watch")
    with contextlib.suppress(OSError):
        paths.outputs_dir.rmdir()  # a watch captures no outputs
    return paths
