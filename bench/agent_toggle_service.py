"""examples/serve_bert.py whose on-demand agent is switched on and off by signals, for
`bench/live_overhead.py --in-process`: SIGUSR1 starts it (`dsprof.serve_on_demand()`: the
listener thread, its socket, the request counters), SIGUSR2 stops it (the listener closed, its
socket removed, the request counters off). With and without the agent are then rounds of one
process, and the p99 of two identical processes (which differ by several percent here, each by
its own luck: memory layout, where its threads land) stays out of the comparison.

    python bench/agent_toggle_service.py --port 8000 --layers 2 ...   # serve_bert's flags
    kill -USR1 PID; kill -USR2 PID
"""

from __future__ import annotations

import runpy
import signal
import sys
from pathlib import Path
from types import FrameType

SERVE_BERT = Path(__file__).resolve().parents[1] / "examples" / "serve_bert.py"


def agent_on(signum: int, frame: FrameType | None) -> None:
    import dsprof

    dsprof.serve_on_demand()  # on the main thread, as a service calls it


def agent_off(signum: int, frame: FrameType | None) -> None:
    from dsprof.live import agent, requests

    if agent.AGENT is not None:
        agent.AGENT.close()
    requests.STATS = None


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, agent_on)
    signal.signal(signal.SIGUSR2, agent_off)
    sys.argv = [str(SERVE_BERT), *sys.argv[1:]]
    # serve_bert's own sys.path: bench/ first would shadow packages (bench/kernels.py)
    sys.path[0] = str(SERVE_BERT.parent)
    runpy.run_path(str(SERVE_BERT), run_name="__main__")
