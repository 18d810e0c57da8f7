"""Cross-rank analysis of dsprof multi-rank jobs from hand-built rank folders (exact and instant).

Each rank has steps (as steps.parquet holds them) and a small Kineto trace on the same epoch-ns
clock with the collective (gloo:all_reduce) and DataLoader spans of each iteration.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dsprof.analyzers import analyze_run
from dsprof.analyzers.rank_phases import rank_phases
from dsprof.analyzers.straggler import StragglerAnalyzer
from dsprof.core.manifest import RunManifest
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import RunData

MS = 1_000_000
BASE_NS = 1_700_000_000_000_000_000
DL = "enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__"


def _rank(
    root: Path,
    rank: int,
    compute_ms: float,
    coll_ms: float,
    data_ms: float = 0.0,
    steps: int = 7,
    trace: bool = True,
) -> RunData:
    """A rank whose every iteration is data, then compute (the step), then a collective."""
    paths = RunPaths(root / "ranks" / str(rank))
    paths.make_dirs()
    period = (data_ms + compute_ms + coll_ms) * MS
    rows, events = [], []
    for i in range(steps):
        t0 = BASE_NS + int(i * period)
        start = t0 + int(data_ms * MS)
        end = start + int(compute_ms * MS)
        rows.append(
            {
                "step": i,
                "start_ns": start,
                "end_ns": end,
                "duration_ns": end - start,
                "traced": 1 <= i <= 5,
            }
        )
        for name, cat, s, dur in (
            (DL, "user_annotation", t0, data_ms * MS),
            ("gloo:all_reduce", "cpu_op", end, coll_ms * MS),
        ):
            if dur:
                events.append(
                    {
                        "ph": "X",
                        "cat": cat,
                        "name": name,
                        "ts": (s - BASE_NS) / 1000,
                        "dur": dur / 1000,
                        "pid": 1,
                        "tid": 1,
                    }
                )
    trace_files = []
    if trace:
        f = paths.trace_dir / "host_1.pt.trace.json"
        doc = {
            "traceEvents": events,
            "baseTimeNanoseconds": BASE_NS,
            "distributedInfo": {"rank": rank},
        }
        f.write_text(json.dumps(doc))
        trace_files.append(f)
    return RunData(paths=paths, manifest=None, steps=pd.DataFrame(rows), trace_files=trace_files)


def _job(tmp_path: Path, ranks: list[RunData]) -> RunData:
    manifest = RunManifest(
        run_id="job",
        argv=["x.py"],
        target="x.py",
        cwd=str(tmp_path),
        start_ns=BASE_NS,
        options={"warmup_steps": 1},
        world_size=len(ranks),
        ranks=list(range(len(ranks))),
    )
    return RunData(
        paths=RunPaths(tmp_path), manifest=manifest, ranks={i: r for i, r in enumerate(ranks)}
    )


def _evidence(finding, metric):
    return next(e.value for e in finding.evidence if e.metric == metric)


def test_lockstep_straggler_is_the_rank_that_waits_least(tmp_path):
    # every rank's iteration is 40 ms; rank 1 computes 35 ms and the others wait 30 ms for it
    job = _job(
        tmp_path,
        [_rank(tmp_path, 0, 5, 35), _rank(tmp_path, 1, 35, 5), _rank(tmp_path, 2, 5, 35)],
    )
    df = rank_phases(job)
    assert list(df["source"].unique()) == ["trace"]
    assert df["iteration_ns"].round(-3).tolist() == [40 * MS] * 3
    assert df["collective_ns"].round(-3).tolist() == [35 * MS, 5 * MS, 35 * MS]
    [f] = StragglerAnalyzer().analyze(job)
    assert f.category == "straggler" and f.severity == "high"
    assert f.title.startswith("rank 1 is the straggler") and "in compute" in f.title
    assert _evidence(f, "slow_rank") == "rank 1"
    assert _evidence(f, "phase") == "compute"
    assert _evidence(f, "straggler_excess") == pytest.approx(30 / 40, abs=1e-3)
    assert _evidence(f, "per_rank_collective_ms") == "0: 35, 1: 5, 2: 35"
    assert f.impact == pytest.approx(0.75, abs=1e-3)


def test_slow_data_loading_is_named_as_the_phase(tmp_path):
    job = _job(
        tmp_path,
        [
            _rank(tmp_path, 0, 10, 22),
            _rank(tmp_path, 1, 10, 2, data_ms=20),
            _rank(tmp_path, 2, 10, 22),
        ],
    )
    [f] = StragglerAnalyzer().analyze(job)
    assert _evidence(f, "slow_rank") == "rank 1"
    assert _evidence(f, "phase") == "data loading"
    assert _evidence(f, "data_delta_ms") == pytest.approx(20, abs=0.01)


def test_balanced_ranks_have_no_straggler(tmp_path):
    # 3 % apart: noise between ranks running the same program, under STRAGGLER_MEDIUM
    job = _job(tmp_path, [_rank(tmp_path, 0, 30, 2), _rank(tmp_path, 1, 31, 1)])
    assert StragglerAnalyzer().analyze(job) == []
    assert [f.category for f in analyze_run(job).findings if f.category == "straggler"] == []


def test_without_traces_step_times_compare(tmp_path):
    job = _job(
        tmp_path,
        [_rank(tmp_path, 0, 10, 0, trace=False), _rank(tmp_path, 1, 50, 0, trace=False)],
    )
    df = rank_phases(job)
    assert list(df["source"].unique()) == ["steps"]
    assert df["collective_ns"].isna().all()
    [f] = StragglerAnalyzer().analyze(job)
    assert _evidence(f, "slow_rank") == "rank 1"
    assert _evidence(f, "straggler_excess") == pytest.approx(40 / 50, abs=1e-3)
    assert "unknown" in f.title
    assert _evidence(f, "per_rank_step_ms") == "0: 10, 1: 50"


def test_a_rank_without_steps_is_left_out(tmp_path):
    empty = _rank(tmp_path, 2, 10, 0, trace=False)
    empty.steps = None
    job = _job(tmp_path, [_rank(tmp_path, 0, 5, 35), _rank(tmp_path, 1, 35, 5), empty])
    assert rank_phases(job)["rank"].tolist() == [0, 1]
    # one rank without a trace: the others' phases are not compared against a guess
    assert list(rank_phases(job)["source"].unique()) == ["trace"]


def _calls(n: int, own_ms: float, wait_ms: float, first_wait_ms: float = 0.0) -> pd.DataFrame:
    """A rank's torch.distributed calls: own work, then a blocking all_reduce, n times."""
    rows, t = [], BASE_NS
    for i in range(n):
        t += int(own_ms * MS)
        wait = first_wait_ms if i == 0 else wait_ms
        rows.append(
            {"name": "all_reduce", "start_ns": t, "end_ns": t + int(wait * MS), "async_op": False}
        )
        t += int(wait * MS)
    return pd.DataFrame(rows)


def test_without_steps_the_ranks_collective_calls_compare(tmp_path):
    # no nn.Module, so no steps and no trace: the timed all_reduce calls still tell; rank 0's
    # first call waited 2 s for rank 1 to load, which must not count as its steady wait
    ranks = []
    for r, (own, wait, first) in enumerate([(2, 28, 2000), (28, 2, 0)]):
        paths = RunPaths(tmp_path / "ranks" / str(r))
        ranks.append(RunData(paths=paths, manifest=None, collectives=_calls(8, own, wait, first)))
    job = _job(tmp_path, ranks)
    df = rank_phases(job)
    assert list(df["source"].unique()) == ["collectives"]
    assert df["iteration_ns"].round(-3).tolist() == [30 * MS, 30 * MS]
    [f] = StragglerAnalyzer().analyze(job)
    assert _evidence(f, "slow_rank") == "rank 1" and _evidence(f, "phase") == "compute"
    assert _evidence(f, "straggler_excess") == pytest.approx(26 / 30, abs=1e-3)
    assert "per collective call" in f.title


def test_collective_log_times_calls_and_restores_torch(tmp_path):
    import torch
    import torch.distributed as dist

    from dsprof.runner.collectives import CollectiveLog

    original = dist.all_reduce
    log = CollectiveLog(tmp_path / "collectives.jsonl")
    log.install()
    assert dist.all_reduce is not original
    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        t = torch.ones(3)
        dist.all_reduce(t)
        dist.all_gather_object([None], {"a": 1})  # built on all_gather: one row, not two
        dist.barrier()
    finally:
        dist.destroy_process_group()
        log.uninstall()
    assert dist.all_reduce is original
    rows = [json.loads(line) for line in (tmp_path / "collectives.jsonl").read_text().splitlines()]
    assert [r["name"] for r in rows] == ["all_reduce", "all_gather_object", "barrier"]
    assert all(r["end_ns"] >= r["start_ns"] and r["async_op"] is False for r in rows)


@pytest.mark.parametrize(
    ("busy_pct", "confidence"), [(100.0, 0.6), (40.0, 1.0)], ids=["busy", "idle"]
)
def test_a_saturated_host_lowers_confidence(tmp_path, busy_pct, confidence):
    # on a host with every core busy a rank may wait for a core: still named, less surely
    slow = _rank(tmp_path, 1, 35, 5)
    slow.host = pd.DataFrame(
        {
            "ts_ns": [BASE_NS, BASE_NS + MS, BASE_NS + 2 * MS],
            "sys_cpu_pct": [0.0, busy_pct, busy_pct],
        }
    )
    [f] = StragglerAnalyzer().analyze(_job(tmp_path, [_rank(tmp_path, 0, 5, 35), slow]))
    assert _evidence(f, "slow_rank") == "rank 1"
    assert f.confidence == confidence
    assert _evidence(f, "slow_rank_host_cpu_busy_pct") == busy_pct
    assert ("waited for a core" in f.detail) == (busy_pct >= 90)


def test_job_communication_share_is_the_least_any_rank_pays(tmp_path):
    # rank 0 and 2 spend 35 ms of 40 in gloo:all_reduce, but 30 ms of that is waiting for rank 1
    job = _job(
        tmp_path,
        [_rank(tmp_path, 0, 5, 35), _rank(tmp_path, 1, 35, 5), _rank(tmp_path, 2, 5, 35)],
    )
    doc = analyze_run(job)
    [f] = [f for f in doc.findings if f.category == "communication-bound"]
    assert f.title.startswith("Collectives take 12% of each iteration even on the rank that")
    assert "rank 1: 5.0 of 40.0 ms" in f.title and "further 75% is waiting" in f.title
    assert f.severity == "medium" and f.impact == pytest.approx(0.125, abs=1e-3)
    assert _evidence(f, "per_rank_comm_share") == "0: 88%, 1: 12%, 2: 88%"
    # each rank's own communication finding (88 % on ranks 0 and 2) stays in its folder only
    assert not [g for g in doc.findings if g.title.startswith("rank 0: Host collectives")]
    assert [g.category for g in analyze_run(job.ranks[0]).findings] == ["communication-bound"]


def test_balanced_ranks_with_heavy_collectives_are_communication_bound(tmp_path):
    job = _job(tmp_path, [_rank(tmp_path, 0, 10, 30), _rank(tmp_path, 1, 10, 30)])
    [f] = [f for f in analyze_run(job).findings if f.category == "communication-bound"]
    assert f.severity == "high" and f.impact == pytest.approx(0.75, abs=1e-3)
    assert "waiting" not in f.title
