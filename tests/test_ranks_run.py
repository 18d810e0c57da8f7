"""`dsprof run --nproc-per-node N` end to end: real torchrun, real gloo ranks on the CPU.

Each test starts the real CLI in a subprocess and reads the job folder back with pandas.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

# rank 1 is late to every all_reduce: its forward is as fast as rank 0's, so step times alone
# (module calls) do not show it; rank 0's time goes to waiting in gloo:all_reduce
PLANTED = textwrap.dedent(
    """
    import sys, time
    import torch, torch.distributed as dist
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model = torch.nn.Sequential(torch.nn.Linear(128, 128), torch.nn.ReLU()).eval()
    x = torch.randn(8, 128)
    with torch.inference_mode():
        for i in range(int(sys.argv[1])):
            y = model(x)
            if rank == 1:
                time.sleep(0.06)
            dist.all_reduce(y)
    print(f"rank {rank} done", flush=True)
    dist.destroy_process_group()
    """
)


# no nn.Module, so no steps and no trace window: the ranks' timed torch.distributed calls tell
PLANTED_NO_MODULE = textwrap.dedent(
    """
    import sys, time
    import torch, torch.distributed as dist
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    x = torch.randn(64, 64)
    for i in range(int(sys.argv[1])):
        y = x @ x
        if rank == 1:
            time.sleep(0.06)
        dist.all_reduce(y)
    print(f"rank {rank} done", flush=True)
    """
)


def dsprof(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsprof", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def only_job(out: Path) -> Path:
    jobs = [p for p in out.iterdir() if p.is_dir()]
    assert len(jobs) == 1, jobs
    return jobs[0]


def manifest(path: Path) -> dict:
    return json.loads((path / "run.json").read_text())


@pytest.fixture(scope="module")
def planted(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    work = tmp_path_factory.mktemp("planted")
    (work / "planted.py").write_text(PLANTED)
    proc = dsprof("run", "--nproc-per-node", "2", "--out", "runs", "planted.py", "10", cwd=work)
    return proc, only_job(work / "runs")


def test_one_job_folder_lists_both_ranks(planted):
    proc, job = planted
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = manifest(job)
    assert m["status"] == "ok" and m["exit_code"] == 0
    assert m["world_size"] == 2 and m["ranks"] == [0, 1]
    assert m["options"]["nproc_per_node"] == 2
    assert m["collectors"]["ranks"]["detail"] == {"0": "ok", "1": "ok"}
    assert m["summary"]["count"] == 9  # the slowest rank's iterations (10 calls)
    assert m["environment"]["torch"].startswith("2.")  # from the ranks' children
    # the whole torchrun tree on this node: the launcher and both workers
    host = pd.read_parquet(job / "metrics" / "host.parquet")
    assert len(host) >= 1 and host["proc_count"].max() >= 3
    assert "rank 0 done" in proc.stdout and "rank 1 done" in proc.stdout


@pytest.mark.parametrize("rank", [0, 1], ids=["rank0", "rank1"])
def test_each_rank_is_a_run_folder_of_its_own(planted, rank):
    _, job = planted
    r = job / "ranks" / str(rank)
    m = manifest(r)
    assert m["status"] == "ok" and m["rank"] == rank and m["local_rank"] == rank
    assert m["world_size"] == 2
    steps = pd.read_parquet(r / "metrics" / "steps.parquet")
    assert steps["step"].tolist() == list(range(10)) and steps["traced"].sum() == 5
    host = pd.read_parquet(r / "metrics" / "host.parquet")  # this rank's own process
    assert len(host) >= 1 and host["proc_count"].min() >= 1
    [trace] = list((r / "trace").iterdir())
    doc = json.loads(gzip.decompress(trace.read_bytes()))
    assert doc["distributedInfo"]["rank"] == rank and doc["distributedInfo"]["backend"] == "gloo"
    assert any(e.get("name") == "gloo:all_reduce" for e in doc["traceEvents"])
    assert f"rank {rank} done" in (r / "logs" / "stdout.log").read_text()
    assert (r / "outputs" / "index.json").is_file()
    assert json.loads((r / "child.json").read_text())["status"] == "ok"


def test_straggler_finding_names_the_slow_rank(planted):
    proc, job = planted
    findings = json.loads((job / "findings.json").read_text())["findings"]
    [f] = [f for f in findings if f["category"] == "straggler"]
    ev = {e["metric"]: e["value"] for e in f["evidence"]}
    assert ev["slow_rank"] == "rank 1" and f["title"].startswith("rank 1 is the straggler")
    assert ev["phase"] == "compute"
    # rank 0 waits for rank 1's 60 ms sleep in every all_reduce
    assert ev["straggler_excess"] >= 0.25 and f["severity"] == "high"
    waits = dict(kv.split(": ") for kv in ev["per_rank_collective_ms"].split(", "))
    assert float(waits["0"]) > float(waits["1"]) + 30
    assert "straggler" in proc.stderr  # the terminal summary shows it


CRASH = textwrap.dedent(
    """
    import time, torch, torch.distributed as dist
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    m = torch.nn.Linear(16, 16)
    with torch.inference_mode():
        for i in range(4):
            dist.all_reduce(m(torch.randn(2, 16)))
        if rank == 1:
            raise ValueError("rank 1 gives up after 4 steps")
        while True:  # rank 0 goes on alone, outside any collective, until torchrun stops it
            m(torch.randn(2, 16))
            time.sleep(0.01)
    """
)


def test_a_crashing_rank_leaves_every_rank_status(tmp_path):
    (tmp_path / "crash.py").write_text(CRASH)
    proc = dsprof("run", "-q", "--nproc-per-node", "2", "--out", "runs", "crash.py", cwd=tmp_path)
    assert proc.returncode == 1
    job = only_job(tmp_path / "runs")
    m = manifest(job)
    assert m["status"] == "failed" and m["exit_code"] == 1
    assert m["error"].startswith("rank 1: ValueError: rank 1 gives up after 4 steps")
    assert m["collectors"]["ranks"]["detail"] == {"0": "failed", "1": "failed"}
    r1 = manifest(job / "ranks" / "1")
    assert r1["status"] == "failed" and "gives up" in r1["error"]
    assert (
        "ValueError: rank 1 gives up" in (job / "ranks" / "1" / "logs" / "stderr.log").read_text()
    )
    # torchrun's SIGTERM ended rank 0 like a Ctrl-C: its data kept, its status says why
    r0 = manifest(job / "ranks" / "0")
    assert r0["status"] == "failed" and r0["error"] == "stopped by torchrun after rank 1 failed"
    assert json.loads((job / "ranks" / "0" / "child.json").read_text())["status"] == "interrupted"
    assert len(pd.read_parquet(job / "ranks" / "1" / "metrics" / "steps.parquet")) == 4
    assert len(pd.read_parquet(job / "ranks" / "0" / "metrics" / "steps.parquet")) > 4
    assert list((job / "ranks" / "0" / "trace").iterdir())
    json.loads((job / "findings.json").read_text())  # readable


@pytest.mark.parametrize(
    ("local_rank", "visible", "index"),
    [(1, None, 1), (1, "2,3", 3), (0, "GPU-8a1f,GPU-77c2", None), (2, "0,1", None)],
    ids=["unset", "indices", "uuids", "fewer-gpus"],
)
def test_nvml_index_of_a_local_rank(local_rank, visible, index):
    from dsprof.runner.rank_samplers import gpu_index_for

    assert gpu_index_for(local_rank, visible) == index


def test_ctrl_c_marks_every_rank_interrupted(tmp_path):
    (tmp_path / "loop.py").write_text(
        textwrap.dedent(
            """
            import time, torch, torch.distributed as dist
            dist.init_process_group("gloo")
            m = torch.nn.Linear(16, 16)
            with torch.inference_mode():
                while True:
                    dist.all_reduce(m(torch.randn(2, 16)))
                    time.sleep(0.005)
            """
        )
    )
    out = tmp_path / "runs"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dsprof",
            "run",
            "-q",
            "--nproc-per-node",
            "2",
            "--out",
            str(out),
            "loop.py",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until both ranks stream steps
        live = list(out.glob("*/ranks/*/metrics/steps.jsonl"))
        if len(live) == 2 and all(p.stat().st_size > 1500 for p in live):
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    job = only_job(out)
    m = manifest(job)
    assert m["status"] == "interrupted" and m["exit_code"] == 130
    for r in (0, 1):
        rm = manifest(job / "ranks" / str(r))
        assert rm["status"] == "interrupted" and rm["summary"]["count"] > 5
        assert (
            json.loads((job / "ranks" / str(r) / "child.json").read_text())["status"]
            == "interrupted"
        )
        assert list((job / "ranks" / str(r) / "trace").iterdir())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_nodes_write_one_shared_job_folder(tmp_path):
    """Two `dsprof run --nnodes 2` on this machine stand in for two nodes on a shared filesystem."""
    (tmp_path / "planted.py").write_text(PLANTED_NO_MODULE)
    port = str(_free_port())
    common = [
        "run",
        "-q",
        "--nproc-per-node",
        "1",
        "--nnodes",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        port,
        "--name",
        "job-42",
        "--out",
        "shared",
    ]
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "dsprof", *common, "--node-rank", str(n), "planted.py", "8"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (0, 1)
    ]
    results = [p.communicate(timeout=180) for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], results[0][1][-2000:] + results[1][1][-2000:]
    job = tmp_path / "shared" / "job-42"
    m = manifest(job)
    assert m["status"] == "ok" and m["world_size"] == 2 and m["ranks"] == [0, 1]
    assert manifest(job / "nodes" / "1")["ranks"] == [1]  # node 1's own samples and logs
    assert (job / "nodes" / "1" / "metrics" / "host.parquet").is_file()
    for r in (0, 1):
        assert manifest(job / "ranks" / str(r))["node_rank"] == r
    findings = json.loads((job / "findings.json").read_text())["findings"]
    [f] = [f for f in findings if f["category"] == "straggler"]
    assert f["title"].startswith("rank 1 is the straggler")
    assert {e["metric"]: e["source"] for e in f["evidence"]}["phase"] == "collectives"
    for r in (0, 1):
        calls = pd.read_parquet(job / "ranks" / str(r) / "metrics" / "collectives.parquet")
        assert (calls["name"] == "all_reduce").sum() == 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nnodes", "2", "--nproc-per-node", "1", "--master-addr", "h"], "needs --name"),
        (["--nnodes", "2", "--nproc-per-node", "1", "--name", "j"], "needs --master-addr"),
        (["--nproc-per-node", "0"], "at least 1"),
        (["--nnodes", "2"], "need --nproc-per-node"),
        (
            [
                "--nproc-per-node",
                "2",
                "--nnodes",
                "2",
                "--node-rank",
                "2",
                "--name",
                "j",
                "--master-addr",
                "h",
            ],
            "--node-rank must lie in 0..1",
        ),
    ],
    ids=["multi-node-no-name", "no-master", "zero-procs", "nnodes-alone", "bad-node-rank"],
)
def test_bad_layouts_are_one_line_errors(tmp_path, args, message):
    (tmp_path / "s.py").write_text("print('never runs')\n")
    proc = dsprof("run", *args, "--out", "runs", "s.py", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("dsprof: error:") and message in proc.stderr
    assert "never runs" not in proc.stdout
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_each_rank_gets_the_nvml_rows_of_its_own_gpu(monkeypatch):
    from dsprof.collectors.base import Samples
    from dsprof.collectors.nvml import NvmlCollector
    from dsprof.runner.distributed import _rank_samples
    from dsprof.runner.rank_samplers import RankHostSamplers

    rows = [{"ts_ns": t, "gpu_index": g, "util_gpu_pct": 10 * g} for t in (1, 2) for g in range(4)]
    node = {"nvml": Samples.of(NvmlCollector, rows)}  # the node's NVML samples, every GPU
    no_workers = RankHostSamplers(agent_pid=os.getpid(), hz=1.0)  # never started: no samples
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    by_name = {s.name: s for s in _rank_samples(1, 5, no_workers, node)}
    assert [r["gpu_index"] for r in by_name["nvml"].rows] == [3, 3] and by_name["nvml"].status.ok
    assert by_name["host"].status.ok is False and "rank 5" in by_name["host"].status.reason
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8a1f")
    by_name = {s.name: s for s in _rank_samples(0, 0, no_workers, node)}
    assert by_name["nvml"].rows == []
    assert "CUDA_VISIBLE_DEVICES=GPU-8a1f" in by_name["nvml"].status.reason
