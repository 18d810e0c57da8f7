"""`dsprof watch PID`: a running service, live, read-only; /metrics for Prometheus.

Exit status: 0 (Ctrl-C, the end of --for, or the service exiting); 2 bad input (no such
process, another user's, a name matching none or several, a port in use).
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from dsprof.cli.options import out_option, run_name_option
from dsprof.core.errors import UsageError
from dsprof.live.duration import parse_duration

# the live view redraws (and the agent's counters are read) once a second
REFRESH_S = 1.0


@click.command("watch")
@click.argument("pid", type=int, required=False)
@click.option(
    "--name", "pattern", metavar="PATTERN", help="The process whose command line matches."
)
@click.option(
    "--for",
    "for_",
    metavar="D",
    default=None,
    help="Stop after D (60s, 5m) and write a run folder.",
)
@click.option(
    "--metrics",
    metavar="HOST:PORT",
    default=None,
    help="Serve Prometheus /metrics there (e.g. 127.0.0.1:9400).",
)
@click.option(
    "--service-metrics",
    metavar="URL",
    default=None,
    help="Read request rate/latency from the service's own Prometheus endpoint (vLLM, ...).",
)
@click.option(
    "--latency-metric",
    metavar="NAME",
    default=None,
    help="The latency histogram there (default: vLLM's, OpenTelemetry's or the only one).",
)
@click.option("--hz", type=float, default=2.0, show_default=True, help="Samples per second.")
@out_option("the run folder (--for)")
@run_name_option("--run-name")
@click.option("--no-analyze", is_flag=True, help="--for: skip the analyzers.")
@click.option("--quiet", "-q", is_flag=True, help="No live view (the summary and URL only).")
def command(
    pid: int | None,
    pattern: str | None,
    for_: str | None,
    metrics: str | None,
    service_metrics: str | None,
    latency_metric: str | None,
    hz: float,
    out: Path,
    run_name: str | None,
    no_analyze: bool,
    quiet: bool,
) -> int:
    """Watch PID (or the process matching --name) without changing it."""
    from rich.console import Console
    from rich.live import Live

    from dsprof.live.target import find_by_name, resolve_pid
    from dsprof.live.view import render
    from dsprof.live.watch import WatchSession, create_watch_folder, watch_manifest

    if (pid is None) == (pattern is None):
        raise UsageError("give a PID or --name PATTERN (one of them)")
    if not 0 < hz <= 100:
        raise UsageError("--hz must be in (0, 100]")
    for_s = parse_duration(for_, "--for") if for_ is not None else None
    target = resolve_pid(pid) if pid is not None else find_by_name(str(pattern))
    if service_metrics is not None:
        from dsprof.live.service_metrics import fetch_counters

        fetch_counters(service_metrics, latency_metric)  # an unreachable URL: said now
    console = Console(stderr=True)
    session = WatchSession(
        target,
        hz=hz,
        keep_all=for_s is not None,
        service_metrics=service_metrics,
        latency_metric=latency_metric,
    )
    server = paths = manifest = None
    try:
        if metrics is not None:
            from dsprof.live.exporter import serve_metrics

            server = serve_metrics(session, metrics)  # a port in use fails before any folder
            console.print(f"dsprof watch: Prometheus metrics at {server.url}")
        if for_s is not None:
            paths = create_watch_folder(out, target, run_name)
            manifest = watch_manifest(paths, target, {"for_s": for_s, "sample_hz": hz})
    except BaseException:
        session.stop()  # releases NVML
        if server is not None:
            server.close()
        raise
    session.start()
    interrupted = False
    # on a terminal the view redraws in place; elsewhere (a log, a pipe) only the last is printed
    live = Live(console=console, auto_refresh=False) if not quiet and console.is_terminal else None
    snap = None
    try:
        if live is not None:
            live.start()
        while True:
            snap = session.snapshot()
            if live is not None:
                live.update(render(snap, for_s=for_s), refresh=True)
            if not snap.alive:
                session.end_reason = (
                    f"the watched process (PID {target.pid}) exited after {snap.elapsed_s:.1f} s"
                )
                break
            if for_s is not None and session.elapsed_s >= for_s:
                break
            time.sleep(REFRESH_S)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if live is not None:
            live.stop()
        session.stop()
        if server is not None:
            server.close()
    if live is None and not quiet and snap is not None:
        console.print(render(snap, for_s=for_s))
    if session.end_reason:
        console.print(f"dsprof watch: {session.end_reason}")
    if paths is not None and manifest is not None:
        from dsprof.report.text import run_summary

        if interrupted:
            session.end_reason = (
                f"stopped by Ctrl-C after {session.elapsed_s:.1f} s of {for_s:g} s; kept"
            )
        cut_short = interrupted or session.end_reason is not None
        final, findings = session.write_run(
            paths, manifest, interrupted=cut_short, analyze=not no_analyze
        )
        for part in run_summary(paths.root, final, findings):
            console.print(part)
    return 0
