"""`dsprof run` on planted-bottleneck scripts: each gets its class at medium or high, and no other
class (nor any GPU class) at medium or high.

Every script in tests/planted/ plants one CPU-reachable bottleneck; planted_runs.planted_run runs
each once per session through the real CLI (subprocess), and the findings checked are the
findings.json that run wrote, as a user would read them.
"""

from __future__ import annotations

import pytest
from planted_runs import PLANTED_DIR, planted_run

from dsprof.core.findings import FindingsDocument

# eight `dsprof run`s of 5-30 s each (more on a loaded machine)
pytestmark = pytest.mark.slow

# script (tests/planted/<name>.py) -> the class it plants
PLANTED = {
    "io_stall": "io-stall",
    "autograd_in_inference": "autograd-in-inference",
    "train_mode_in_inference": "train-mode-in-inference",
    "cpu_threads": "cpu-threads",
    "cpu_fp32_linear": "cpu-fp32-linear",
    "launch_overhead": "launch-overhead",
    "host_sync": "host-sync",
    "small_batch": "small-batch",
}
# classes that need a GPU: any of them on a CPU run is a false alarm, whatever its severity
GPU_CATEGORIES = {
    "gpu-idle",
    "memory-bandwidth-bound",
    "no-tensor-cores",
    "idle-sm",
    "memory-fragmentation",
}


def _findings(script: str) -> FindingsDocument:
    doc = planted_run(script).findings
    assert doc is not None, "dsprof run wrote no findings.json"
    assert doc.analyzers_failed == {}, doc.analyzers_failed
    return doc


# control scripts with no planted bottleneck
CONTROLS = ("healthy",)


def test_every_planted_script_is_checked():
    assert {p.stem for p in PLANTED_DIR.glob("*.py")} == set(PLANTED) | set(CONTROLS)


@pytest.mark.parametrize("script", CONTROLS)
def test_a_healthy_script_gets_no_medium_or_high_finding(script):
    doc = _findings(script)
    assert [(f.category, f.severity, f.title) for f in doc.findings if f.severity != "low"] == []


@pytest.mark.parametrize(("script", "category"), PLANTED.items(), ids=list(PLANTED))
def test_planted_class_fires_at_medium_or_high(script, category):
    doc = _findings(script)
    mine = [f for f in doc.findings if f.category == category]
    assert mine, f"no {category} finding; got {[(f.category, f.severity) for f in doc.findings]}"
    assert mine[0].severity in ("medium", "high"), mine[0].title
    assert mine[0].evidence and mine[0].recipes


@pytest.mark.parametrize(("script", "category"), PLANTED.items(), ids=list(PLANTED))
def test_no_false_alarm(script, category):
    doc = _findings(script)
    others = [
        (f.category, f.severity, f.title)
        for f in doc.findings
        if f.category != category and f.severity in ("medium", "high")
    ]
    assert others == []
    assert [f.category for f in doc.findings if f.category in GPU_CATEGORIES] == []
