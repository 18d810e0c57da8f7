"""`dsprof load TARGET`: measure a service under open-loop load against its SLOs.

Exit status: 0 every SLO met (or none given); 3 an SLO failed; 4 the measurement is invalid
(the generator fell behind its schedule); 1 the service died or the load failed; 2 bad input,
an unreachable URL or a service that never answered; 130 Ctrl-C (partial results kept).
"""

from __future__ import annotations

from pathlib import Path

import click

from dsprof.cli.options import out_option, slo_option
from dsprof.core.errors import UsageError


def _requests_option(value: str | None) -> tuple[int | None, Path | None]:
    """--requests N (a count) or --requests FILE.jsonl (the request bodies)."""
    if value is None:
        return None, None
    if value.strip().isdigit():
        return int(value), None
    return None, Path(value)


def _duration(value: str | None) -> float | None:
    if value is None:
        return None
    v = value.strip().lower()
    scale = 1.0
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if v.endswith(suffix):
            v, scale = v[: -len(suffix)], factor
            break
    try:
        return float(v) * scale
    except ValueError:
        raise UsageError(f"--duration wants seconds like 30, 30s or 2m, not {value!r}") from None


@click.command("load")
@click.argument("target")
@click.option(
    "--server",
    metavar="CMD",
    help='Start the service with CMD under dsprof run ("python serve.py").',
)
@click.option("--pid", type=int, help="Sample this running service's process tree (psutil/NVML).")
@click.option(
    "--rate",
    default=None,
    metavar="R|A..B[:N]",
    help="Offered req/s, or a sweep A..B (N points, default 5).  [default: 10]",
)
@click.option(
    "--arrival",
    type=click.Choice(["poisson", "constant", "gamma"]),
    default="poisson",
    show_default=True,
)
@click.option(
    "--burstiness",
    type=float,
    default=1.0,
    show_default=True,
    help="gamma shape: 1 Poisson, <1 burstier.",
)
@click.option(
    "--duration", default=None, metavar="SECONDS", help="Length of each step (default 10 s)."
)
@click.option(
    "--requests",
    "requests_opt",
    default=None,
    metavar="N|FILE.jsonl",
    help="N requests per step, or the requests to send (one JSON a line).",
)
@click.option(
    "--concurrency",
    type=int,
    default=None,
    help="Closed loop: N requests in flight (labelled closed-loop).",
)
@click.option(
    "--body", type=click.Path(path_type=Path), default=None, help="The body of every request."
)
@click.option(
    "--mix",
    default=None,
    metavar="CLASS=SHARE,...",
    help="Priority classes, e.g. real-time=0.2,batch=0.6,background=0.2.",
)
@click.option("--priority-header", default="X-Priority", show_default=True)
@slo_option("p99<100ms, rps>1000, gpu-util=75..90, errors<0.1%, real-time:p99<50ms, or seeds.")
@click.option(
    "--find-max-rate",
    is_flag=True,
    help="Search the highest rate meeting the SLOs (±5 %, <= 8 steps).",
)
@click.option(
    "--workers", type=int, default=1, show_default=True, help="Sending processes (merged results)."
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=30.0,
    show_default=True,
    help="Per-request timeout, s.",
)
@click.option(
    "--connections", type=int, default=1024, show_default=True, help="Most open connections."
)
@out_option()
@click.option("--name", default=None, help="Name used in the run folder.")
@click.option(
    "--ready-timeout",
    type=float,
    default=120.0,
    show_default=True,
    help="Seconds the server may take to answer.",
)
@click.option("--no-trace", is_flag=True, help="No service-side trace window.")
@click.option(
    "--trace-steps",
    default="2:5",
    show_default=True,
    help="WARMUP:ACTIVE model calls traced from mid-load.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="Only the SLO verdict line.")
def command(
    target: str,
    server: str | None,
    pid: int | None,
    rate: str | None,
    arrival: str,
    burstiness: float,
    duration: str | None,
    requests_opt: str | None,
    concurrency: int | None,
    body: Path | None,
    mix: str | None,
    priority_header: str,
    slos: tuple[str, ...],
    find_max_rate: bool,
    workers: int,
    timeout_s: float,
    connections: int,
    out: Path,
    name: str | None,
    ready_timeout: float,
    no_trace: bool,
    trace_steps: str,
    seed: int,
    quiet: bool,
) -> int:
    """Send load to TARGET and check it against SLOs.

    TARGET is an http:// URL (with --server CMD to start the service, or --pid PID to sample a
    running one), or FILE.py:FUNCTION / MODULE:FUNCTION, a handler of one request that dsprof
    serves in a child under its collectors. Latency counts from each request's scheduled time.
    """
    from rich.console import Console

    from dsprof.cli.run import parse_steps
    from dsprof.load.arrivals import parse_rates
    from dsprof.load.plan import parse_mix
    from dsprof.load.session import LoadRequest, run_load
    from dsprof.report.load_text import (
        classes_table,
        slo_notes,
        slo_table,
        step_label,
        step_notes,
        steps_table,
    )

    console = Console(stderr=True)
    count, requests_file = _requests_option(requests_opt)
    request = LoadRequest(
        target=target,
        server=server,
        pid=pid,
        rates=parse_rates(rate) if rate else [10.0],
        concurrency=concurrency,
        arrival=arrival,
        burstiness=burstiness,
        duration_s=_duration(duration),
        requests=count,
        body_file=body,
        requests_file=requests_file,
        mix=parse_mix(mix) if mix else None,
        priority_header=priority_header,
        slos=list(slos),
        find_max_rate=find_max_rate,
        workers=workers,
        timeout_s=timeout_s,
        max_connections=connections,
        out=out,
        name=name,
        ready_timeout_s=ready_timeout,
        trace=not no_trace,
        trace_steps=parse_steps(trace_steps),
        seed=seed,
    )
    if not quiet:
        request.on_step = lambda s: console.print(
            f"step {s.index + 1}: {step_label(s)} -> {s.achieved_rate_per_s:.1f} req/s achieved, "
            f"p99 {s.latency.p99_ms or 0:.1f} ms, {s.errors} errors"
        )
    result = run_load(request)
    summary = result.summary
    out_console = Console()
    if not quiet:
        out_console.print(steps_table(summary))
        for line in step_notes(summary):
            out_console.print(line)
        if summary.steps and (t := classes_table(summary.steps[-1])) is not None:
            out_console.print(t)
    for s in summary.steps if summary.slo_specs and not quiet else ():
        out_console.print(slo_table(s.slos, title=f"SLOs at {step_label(s)}"))
        for line in slo_notes(s.slos):
            out_console.print(line)
    if summary.max_rate is not None:
        best = summary.max_rate.max_rate_per_s
        out_console.print(
            f"max rate meeting the SLOs: {best:.1f} req/s ({summary.max_rate.note})"
            if best is not None
            else f"max rate: none ({summary.max_rate.note})"
        )
    if summary.error and summary.status != "invalid":  # invalid steps are noted above
        console.print(f"[bold red]{summary.status}[/]: {summary.error}")
    if summary.slo_status is not None:
        style = {"pass": "green", "fail": "bold red"}.get(summary.slo_status, "yellow")
        out_console.print(f"SLOs: [{style}]{summary.slo_status.upper()}[/]")
    if not quiet:
        _print_findings(out_console, result.paths)
        console.print(f"run folder: {result.paths.root}")
        console.print(
            f"next: dsprof report {result.paths.root} -o report.html   |   dsprof dashboard"
        )
    return result.exit_code


def _print_findings(console: object, paths: object) -> None:
    from dsprof.report.text import findings_table
    from dsprof.store.documents import read_findings

    try:
        doc = read_findings(paths.findings)  # type: ignore[attr-defined]
    except Exception:
        return
    if doc.findings:
        console.print(findings_table(doc, limit=5))  # type: ignore[attr-defined]
