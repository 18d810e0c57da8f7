"""dsprof.load: measure a service under open-loop load against its SLOs (`dsprof load`).

Library use (what the CLI does):

    from dsprof.load import LoadRequest, run_load
    result = run_load(LoadRequest("http://127.0.0.1:8000/embed", rates=[50.0], duration_s=30,
                                  slos=["p99<100ms"]))
    result.summary.steps[0].latency.p99_ms, result.paths.requests, result.exit_code

Lower level: `generator.Step` / `generator.run_step` send one step and return its rows;
`histogram.LatencyHistogram` (HDR, mergeable), `slo.parse_slos` / `slo.check_slos`,
`arrivals.schedule_ns`. Heavy imports (aiohttp, pandas) wait until they are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dsprof.load.session import LoadRequest, LoadResult, run_load

__all__ = ["LoadRequest", "LoadResult", "run_load"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from dsprof.load import session

        return getattr(session, name)
    raise AttributeError(name)
