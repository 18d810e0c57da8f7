"""One `dsprof load`: check the input, start or find the service, send the steps, write the run.

The result is a run folder: the service's own (`--server` or a handler target: it ran under
`dsprof run`, so its steps, trace window and host/GPU samples are there) or a new one of kind
"load" (`--pid`: that process sampled; a bare URL: this machine sampled), plus
metrics/requests.parquet and load.json. Library entry: `run_load(LoadRequest(...))`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dsprof.collectors.base import Samples
from dsprof.collectors.sampling import Sampling
from dsprof.core.errors import UsageError
from dsprof.core.load import LoadMode, LoadStep, LoadSummary, MaxRateSearch
from dsprof.load import generator as gen
from dsprof.load.arrivals import schedule_ns
from dsprof.load.plan import (
    PRIORITY_HEADER,
    RequestTemplate,
    assign_priorities,
    read_body_file,
    read_requests_file,
)
from dsprof.load.search import MaxRateSearcher
from dsprof.load.service import Service, ServiceError, check_url, free_port, probe, server_argv
from dsprof.load.slo import overall, parse_slos
from dsprof.load.summary import requests_frame, summarize_step
from dsprof.load.workers import run_with_workers
from dsprof.store.documents import write_model
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import DEFAULT_RUNS_DIR, create_run_folder

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_SLO_FAILED = 3
EXIT_INVALID = 4
EXIT_INTERRUPTED = 130
HANDLER_MODULE = "dsprof.load.handler_server"
DEFAULT_RATE = 10.0
DEFAULT_DURATION_S = 10.0


@dataclass
class LoadRequest:
    """Everything one load run is asked to do (the CLI's options, as a library call)."""

    target: str
    server: str | None = None
    pid: int | None = None
    rates: list[float] = field(default_factory=lambda: [DEFAULT_RATE])
    concurrency: int | None = None
    arrival: str = "poisson"
    burstiness: float = 1.0
    duration_s: float | None = None
    requests: int | None = None
    body_file: Path | None = None
    requests_file: Path | None = None
    mix: dict[str, float] | None = None
    priority_header: str = PRIORITY_HEADER
    slos: list[str] = field(default_factory=list)
    find_max_rate: bool = False
    workers: int = 1
    timeout_s: float = 30.0
    max_connections: int = 1024
    out: Path = DEFAULT_RUNS_DIR
    name: str | None = None
    ready_timeout_s: float = 120.0
    trace: bool = True
    trace_steps: tuple[int, int] = (2, 5)
    sample_hz: float = 5.0
    seed: int = 0
    on_step: Callable[[LoadStep], None] | None = None


@dataclass
class LoadResult:
    """The finished run folder, its load.json and the exit status to pass on."""

    paths: RunPaths
    summary: LoadSummary
    exit_code: int


def _templates(req: LoadRequest) -> list[RequestTemplate]:
    if req.body_file is not None and req.requests_file is not None:
        raise UsageError("give --body or --requests FILE.jsonl, not both")
    if req.requests_file is not None:
        return read_requests_file(req.requests_file)
    if req.body_file is not None:
        return [read_body_file(req.body_file)]
    return [RequestTemplate(body=b"{}", headers={"Content-Type": "application/json"})]


def _check(req: LoadRequest) -> None:
    if req.server and req.pid:
        raise UsageError("--server starts the service; --pid samples a running one: not both")
    if req.concurrency is not None and (req.find_max_rate or len(req.rates) > 1):
        raise UsageError("--concurrency is the closed-loop mode: it takes no rate sweep or search")
    if req.concurrency is not None and req.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if req.workers < 1:
        raise UsageError("--workers must be at least 1")
    if req.duration_s is None and req.requests is None:
        req.duration_s = DEFAULT_DURATION_S
    if req.duration_s is not None and req.duration_s <= 0:
        raise UsageError("--duration must be above 0 s")
    if req.requests is not None and req.requests < 1:
        raise UsageError("--requests N must be at least 1")


def _is_handler(target: str) -> bool:
    return "://" not in target and ":" in target


def run_load(req: LoadRequest) -> LoadResult:
    """Run one load (see the module docstring); raises UsageError before any load on bad input."""
    _check(req)
    slos = parse_slos(req.slos)
    templates = _templates(req)
    handler = _is_handler(req.target)
    if handler:
        if req.server or req.pid:
            raise UsageError("a FILE.py:FUNCTION target is served by dsprof: no --server or --pid")
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        run_args = ["-m", HANDLER_MODULE, req.target, "--port", str(port)]
        _check_handler(req.target)
    else:
        url = req.target
        check_url(url)
        run_args = server_argv(req.server) if req.server else []
    service: Service | None = None
    summary = LoadSummary(
        target=req.target,
        url=url,
        mode="closed-loop" if req.concurrency else "open-loop",
        arrival=None if req.concurrency else req.arrival,
        burstiness=None if req.concurrency else req.burstiness,
        workers=req.workers,
        client=f"{gen.CLIENT} on {gen.event_loop_name()}",
        timeout_s=req.timeout_s,
        slo_specs=[s.spec for s in slos],
    )
    stem = req.name or _stem(req.target, req.server)
    if run_args:
        paths = create_run_folder(req.out, stem)
        shutil.rmtree(paths.root)  # reserved the name; `dsprof run --run-dir` creates it
        service = Service.start(
            run_args,
            paths,
            trace_steps=(max(req.trace_steps[0], 2), req.trace_steps[1]) if req.trace else None,
            sample_hz=req.sample_hz,
        )
        summary.server["command"] = req.server or f"python -m {HANDLER_MODULE} {req.target}"
        sampled_pid = service.proc.pid
    else:
        if req.pid is not None and not _pid_alive(req.pid):
            raise ServiceError(f"--pid {req.pid}: no such process")
        if (why := probe(url)) is not None:
            raise ServiceError(f"cannot reach {url}: {why}")
        paths = create_run_folder(req.out, stem)
        sampled_pid = req.pid if req.pid is not None else os.getpid()
        summary.server["pid"] = req.pid
    # from here on the run folder exists: whatever happens, it gets load.json and what was measured
    sampling: Sampling | None = None
    log = gen.RequestLog()
    interrupted = False
    try:
        if service is not None:
            try:
                summary.server["ready_s"] = round(service.wait_ready(url, req.ready_timeout_s), 2)
            except ServiceError as e:
                summary.status, summary.error = "failed", str(e)
                raise
        gen.warm_up()  # the client's imports are not charged to the first requests' schedule
        sampling = Sampling(sampled_pid, req.sample_hz).__enter__()
        _run_steps(req, summary, slos, templates, url, log, sampling, service)
    except KeyboardInterrupt:
        interrupted = True
        summary.status, summary.error = "interrupted", "interrupted (Ctrl-C); partial results kept"
    finally:
        samples = sampling.stop() if sampling is not None else []
        if paths.root.is_dir():  # a service that never started has no folder to write into
            _write_requests(paths, log)
            summary.slo_status = overall([r for s in summary.steps for r in s.slos])  # type: ignore[assignment]
            write_model(paths.load_summary, summary)
        if service is not None:
            _finish_service(service, summary, paths)
        else:
            _finish_own_folder(paths, req, summary, samples, interrupted)
    return LoadResult(paths, summary, _exit_code(summary))


def _run_steps(
    req: LoadRequest,
    summary: LoadSummary,
    slos: list[Any],
    templates: list[RequestTemplate],
    url: str,
    log: gen.RequestLog,
    samplers: Sampling,
    service: Service | None,
) -> None:
    should_stop = service.exited if service is not None else None
    mode: LoadMode = summary.mode
    searcher = MaxRateSearcher(req.rates[0]) if req.find_max_rate else None
    planned = [None] if req.concurrency else list(req.rates)
    # the service's trace window opens in the middle of the last planned step (the highest rate
    # of a sweep), or of the first step of a search
    trace_step = 0 if searcher is not None else len(planned) - 1
    index = 0
    while True:
        if searcher is not None:
            rate: float | None = searcher.next_rate()
            if rate is None:
                break
        elif index < len(planned):
            rate = planned[index]
        else:
            break
        step = _plan_step(req, index, rate, templates, url)
        start_ns = time.time_ns() + 50_000_000
        timer = None
        if service is not None and index == trace_step:
            timer = threading.Timer(
                (start_ns - time.time_ns()) / 1e9 + _midpoint_s(step, req),
                service.open_trace_window,
            )
            timer.daemon = True
            timer.start()
        step_log = gen.RequestLog()
        try:
            step_log, stopped = run_with_workers(step, start_ns, req.workers, should_stop, step_log)
        finally:
            log.extend(step_log)
            if timer is not None:
                timer.cancel()
        df = requests_frame(step_log.columns())
        result = summarize_step(
            df,
            index=index,
            mode=mode,
            offered_rate_per_s=rate,
            concurrency=req.concurrency,
            start_ns=start_ns,
            slos=slos,
            host=_frame(samplers.get("host")),
            gpu=_frame(samplers.get("nvml")),
        )
        summary.steps.append(result)
        if req.on_step is not None:
            req.on_step(result)
        if stopped:
            summary.status, summary.error = "failed", stopped
            return
        if not result.valid and summary.status == "ok":
            summary.status, summary.error = "invalid", result.invalid_reason
        if searcher is not None:
            assert rate is not None
            searcher.record(rate, result.valid and all(s.status != "fail" for s in result.slos))
            summary.max_rate = MaxRateSearch(
                max_rate_per_s=searcher.best,
                tried=searcher.tried,
                precision=searcher.precision,
                note=searcher.note,
            )
        index += 1


def _plan_step(
    req: LoadRequest, index: int, rate: float | None, templates: list[RequestTemplate], url: str
) -> gen.Step:
    if rate is None:  # closed loop
        n = req.requests if req.requests is not None else 1 << 20
        due = None
    else:
        due = schedule_ns(
            rate,
            arrival=req.arrival,
            burstiness=req.burstiness,
            duration_s=req.duration_s,
            requests=req.requests,
            seed=req.seed + index,
        )
        n = len(due)
        if n == 0:
            raise UsageError(
                f"no request falls within --duration {req.duration_s} s at {rate} req/s"
            )
    priorities = assign_priorities(min(n, 1 << 20), templates, req.mix, req.seed + index)
    return gen.Step(
        index=index,
        url=url,
        templates=templates,
        priorities=priorities,
        due_ns=due,
        concurrency=req.concurrency,
        requests=req.requests,
        duration_s=req.duration_s,
        timeout_s=req.timeout_s,
        priority_header=req.priority_header,
        max_connections=req.max_connections,
    )


def _midpoint_s(step: gen.Step, req: LoadRequest) -> float:
    if step.due_ns is not None and len(step.due_ns):
        return float(step.due_ns[len(step.due_ns) // 2]) / 1e9
    return (req.duration_s or 1.0) / 2


def _frame(sampler: Any) -> pd.DataFrame | None:
    if sampler is None or not sampler.rows:
        return None
    return pd.DataFrame(list(sampler.rows))


def _write_requests(paths: RunPaths, log: gen.RequestLog) -> None:
    paths.metrics_dir.mkdir(parents=True, exist_ok=True)
    df = requests_frame(log.columns())
    if not len(df):
        df = df.astype({"latency_ns": "Int64"}) if "latency_ns" in df else df
    df.to_parquet(paths.requests, index=False)
    if log.error_bodies:
        paths.logs_dir.mkdir(parents=True, exist_ok=True)
        with open(paths.error_bodies, "w", encoding="utf-8") as f:
            for row in log.error_bodies:
                f.write(json.dumps(row) + "\n")


def _finish_service(service: Service, summary: LoadSummary, paths: RunPaths) -> None:
    """Stop the service; its run.json says ok when dsprof load stopped it as planned."""
    from dsprof.store.documents import read_manifest

    died = service.exited()
    code = service.stop()
    summary.server["exit_code"] = code
    with contextlib.suppress(Exception):
        manifest = read_manifest(paths.manifest)
        planned = summary.status in ("ok", "invalid")
        if planned and died is None and service.stopped_by_us and manifest.status == "interrupted":
            # the service ends because the load is over: that is the plan, not an interruption
            manifest.status, manifest.exit_code, manifest.error = "ok", 0, None
        manifest.options["load"] = {
            "url": summary.url,
            "stopped_by_dsprof_load": service.stopped_by_us,
        }
        write_model(paths.manifest, manifest)
    if paths.root.is_dir():
        write_model(paths.load_summary, summary)


def _finish_own_folder(
    paths: RunPaths,
    req: LoadRequest,
    summary: LoadSummary,
    samples: list[Samples],
    interrupted: bool,
) -> None:
    """A --pid or bare-URL load: this process's samples and a run.json of kind "load"."""
    from dsprof.core.manifest import RunManifest
    from dsprof.runner.finalize import finish_run

    manifest = RunManifest(
        run_id=paths.root.name,
        kind="load",
        argv=["load", req.target],
        target=req.target,
        cwd=os.getcwd(),
        start_ns=summary.steps[0].start_ns if summary.steps else time.time_ns(),
        options={
            "load": {
                "url": summary.url,
                "pid": req.pid,
                "sampled": "pid" if req.pid else "this machine",
            }
        },
    )
    code = 0 if summary.status != "failed" else 1
    finish_run(
        paths,
        manifest,
        code,
        interrupted=interrupted,
        samples=samples,
    )
    from dsprof.analyzers import write_findings

    write_findings(paths.root)


def _exit_code(summary: LoadSummary) -> int:
    if summary.status == "interrupted":
        return EXIT_INTERRUPTED
    if summary.status == "failed":
        return EXIT_FAILED
    if summary.slo_status == "fail":
        return EXIT_SLO_FAILED
    if summary.status == "invalid":
        return EXIT_INVALID
    return EXIT_OK


def _stem(target: str, server: str | None) -> str:
    if server:
        args = server_argv(server)
        return Path(args[1] if args[0] == "-m" else args[0]).stem
    if _is_handler(target):
        return Path(target.rpartition(":")[0]).stem.replace(".", "-")
    return "load"


def _check_handler(spec: str) -> None:
    where = spec.rpartition(":")[0]
    if where.endswith(".py") and not Path(where).is_file():
        raise UsageError("no such handler file", path=where)


def _pid_alive(pid: int) -> bool:
    import psutil

    return bool(psutil.pid_exists(pid))
