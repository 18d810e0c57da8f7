"""The run notices: no steps is never healthy, work in worker processes, failed calls, sampling."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dsprof.analyzers.run_scope import WORKER_CPU_SHARE, run_notices, worker_cpu_share
from dsprof.core.child import ChildInfo
from dsprof.core.manifest import RunManifest
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import RunData


def run_of(tmp_path: Path, *, steps: int, main_s: float, workers_s: float, **child) -> RunData:
    manifest = RunManifest(
        run_id="20260101-120000-x-abcd", argv=["x.py"], target="x.py", cwd=".", start_ns=0
    )
    manifest.status = "ok"
    host = pd.DataFrame(
        {
            "ts_ns": [1, 2, 3],
            "proc_cpu_pct": [50.0, 60.0, 70.0],
            "main_cpu_ns": [0, int(main_s * 5e8), int(main_s * 1e9)],
            "workers_cpu_ns": [0, int(workers_s * 5e8), int(workers_s * 1e9)],
        }
    )
    table = pd.DataFrame(
        {"step": range(steps), "start_ns": range(steps), "end_ns": range(1, steps + 1)}
    )
    return RunData(
        paths=RunPaths(tmp_path),
        manifest=manifest,
        steps=table if steps else None,
        host=host,
        child_info=ChildInfo.model_validate(child),
    )


def codes(run: RunData) -> dict[str, str]:
    return {n.code: n.message for n in run_notices(run)}


def test_no_steps_and_pool_workers_say_where_the_work_went(tmp_path):
    workers = [{"pid": 11, "module": "Sequential"}, {"pid": 12, "module": "Sequential"}]
    run = run_of(tmp_path, steps=0, main_s=1.0, workers_s=3.0, worker_processes=workers)
    assert worker_cpu_share(run) == pytest.approx(0.75)
    message = codes(run)["run-without-steps"]
    assert "2 worker processes called Sequential" in message and "75%" in message
    assert "dsprof.profile" in message


def test_no_steps_without_workers_points_at_markers(tmp_path):
    message = codes(run_of(tmp_path, steps=0, main_s=1.0, workers_s=0.0))["run-without-steps"]
    assert "dsprof.step()" in message and "worker" not in message


@pytest.mark.parametrize(
    ("workers_s", "expected"),
    [(3.0, True), (0.5, False)],
    ids=["workers-did-the-work", "data-loader-helpers"],
)
def test_steps_with_busy_model_workers(tmp_path, workers_s, expected):
    workers = [{"pid": 11, "module": "Linear"}]
    run = run_of(tmp_path, steps=20, main_s=1.0, workers_s=workers_s, worker_processes=workers)
    assert (worker_cpu_share(run) >= WORKER_CPU_SHARE) is expected
    assert ("model-in-workers" in codes(run)) is expected
    assert "run-without-steps" not in codes(run)


def test_failed_calls_and_sampled_outputs_are_said(tmp_path):
    run = run_of(
        tmp_path,
        steps=10,
        main_s=1.0,
        workers_s=0.0,
        model={"index": 0, "class": "Net", "failed_calls": 2},
        outputs={
            "steps": [0],
            "step_bytes_cap": 1024,
            "run_bytes_cap": 4096,
            "sampled": [
                {
                    "step": 0,
                    "name": "logits",
                    "shape": [8, 2048, 128256],
                    "sampled": {"rows": 4, "rows_of": 16384, "row_stride": 4096},
                }
            ],
        },
    )
    found = codes(run)
    assert "2 call(s) of Net raised" in found["failed-calls"]
    assert "logits [8, 2048, 128256] (4 of 16384 rows)" in found["outputs-sampled"]
