"""dsprof.live: a running service, seen from outside and traced on demand.

    watch.py     read-only psutil + NVML sampling of a PID's process tree (dsprof watch)
    view.py      the live terminal view of a watch
    exporter.py  the watch's numbers on a Prometheus /metrics endpoint (prometheus-client)
    gpu.py       NVML rows of the GPUs a process tree uses, with its own memory on each
    agent.py     the on-demand agent inside the service (dsprof.serve_on_demand())
    capture.py   one torch.profiler window inside the service, while it keeps serving
    control.py   the user-only Unix control socket between the two
    trace.py     dsprof trace PID: ask for a window, sample, finish the run folder
    requests.py  the service's request counters (rate, latency buckets) and their arithmetic
    inject.py    starting the agent with sys.remote_exec (Python 3.14+), when asked
    target.py    finding and checking the process (PID or --name)

Only agent.py, capture.py and requests.py run inside the service.
"""

from __future__ import annotations

from dsprof.live.requests import record_request

__all__ = ["record_request"]
