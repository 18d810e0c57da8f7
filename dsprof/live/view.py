"""The live terminal view of `dsprof watch`: one panel rendered from a WatchSnapshot (pure)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dsprof.live.watch import GPU_UTIL_BAND, WatchSnapshot


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def util_style(pct: float | None, band: tuple[float, float] = GPU_UTIL_BAND) -> tuple[str, str]:
    """(style, words) of a GPU utilisation against the serving band."""
    if pct is None:
        return "dim", "not reported"
    lo, hi = band
    if pct < lo:
        return "yellow", f"below the {lo:.0f}-{hi:.0f} % band: the GPU waits"
    if pct > hi:
        return "red", f"above the {lo:.0f}-{hi:.0f} % band: requests will queue"
    return "green", f"in the {lo:.0f}-{hi:.0f} % band"


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds is not None else "-"


def render(snap: WatchSnapshot, *, for_s: float | None = None) -> RenderableType:
    """The whole view: process tree, GPUs, requests, notes."""
    t = snap.target
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    h = snap.host
    if h is not None:
        grid.add_row(
            "CPU",
            f"{h.get('proc_cpu_pct', 0):.0f} % (100 % = one core) · system "
            + (f"{h['sys_cpu_pct']:.0f} %" if h.get("sys_cpu_pct") is not None else "-")
            + (
                f" · iowait {h['sys_iowait_pct']:.0f} %"
                if h.get("sys_iowait_pct") is not None
                else ""
            ),
        )
        grid.add_row(
            "memory",
            f"RSS {_bytes(h.get('proc_rss_bytes'))} · {h.get('proc_threads', 0)} threads · "
            f"{h.get('proc_count', 1)} process(es)",
        )
    else:
        grid.add_row("CPU", Text("no sample yet", style="dim"))
    r = snap.requests
    if r is not None:
        words = f"{r.rate_per_s:.1f} req/s · p50 {_ms(r.p50_s)} · p99 {_ms(r.p99_s)}"
        if r.error_share:
            words += f" · errors {r.error_share:.1%}"
        if r.queue_p50_s is not None:
            words += f" · queued p50 {_ms(r.queue_p50_s)}"
        if r.waiting is not None:
            words += f" · {r.waiting} waiting"
        grid.add_row("requests", words + f"  [dim](last {r.seconds:.0f} s)[/dim]")
    elif snap.counters is not None:
        grid.add_row("requests", Text(f"{snap.counters.requests_total} so far", style="dim"))
    parts: list[RenderableType] = [grid]
    if snap.gpus:
        gpus = Table(box=None, padding=(0, 1), show_edge=False)
        for col in ("GPU", "util", "", "memory", "this service", "power", "SM clock"):
            gpus.add_column(col, no_wrap=True)
        for g in snap.gpus:
            index = int(g.get("gpu_index", 0))
            name = snap.gpu_names.get(index, (f"GPU {index}", None))[0]
            util = g.get("util_gpu_pct")
            style, words = util_style(util)
            used, total = g.get("mem_used_bytes"), g.get("mem_total_bytes")
            gpus.add_row(
                f"{index} {name}",
                Text(f"{util:.0f} %" if util is not None else "-", style=style),
                Text(words, style=style),
                f"{_bytes(used)} / {_bytes(total)}" if used is not None else "-",
                _bytes(g.get("proc_mem_used_bytes")),
                f"{g['power_w']:.0f} W" if g.get("power_w") is not None else "-",
                f"{g['sm_clock_mhz']:.0f} MHz" if g.get("sm_clock_mhz") is not None else "-",
            )
        parts.append(gpus)
    if not snap.alive:
        parts.append(Text(f"PID {t.pid} has exited.", style="bold red"))
    for note in snap.notes:
        parts.append(Text(note, style="dim"))
    clock = f"{snap.elapsed_s:.0f} s" + (f" of {for_s:g} s" if for_s else "")
    return Panel(
        Group(*parts),
        title=f"dsprof watch · PID {t.pid} · {t.label}",
        subtitle=f"{clock} · Ctrl-C to stop",
        expand=False,
    )
