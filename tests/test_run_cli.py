"""`dsprof run` end to end: the real CLI in a subprocess on small scripts, read back with pandas."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

RUN_ID_RE = re.compile(r"^\d{8}-\d{6}-[A-Za-z0-9_.-]+-[0-9a-f]{4}$")

STEADY = textwrap.dedent(
    """
    import os, sys, torch
    print("argv", sys.argv, "path0", sys.path[0], "name", __name__, "stdin", sys.stdin.readline().strip(), "file", __file__)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).eval()
    with torch.no_grad():
        for i in range(int(sys.argv[1])):
            y = model(torch.randn(4, 64))
    print("done", tuple(y.shape), flush=True)
    sys.exit(int(sys.argv[2]))
    """
)


def dsprof(
    *args: str, cwd: Path, stdin: str = "", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsprof", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(scope="module")
def steady_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    work = tmp_path_factory.mktemp("steady")
    (work / "sub").mkdir()
    (work / "sub" / "steady.py").write_text(STEADY)
    out = work / "runs"
    proc = dsprof("run", "--out", str(out), "sub/steady.py", "12", "3", cwd=work, stdin="hello\n")
    return proc, only_run(out), work


def test_script_runs_as_python_would_and_exit_status_passes_through(steady_run):
    proc, run, work = steady_run
    assert proc.returncode == 3, proc.stderr
    line = next(s for s in proc.stdout.splitlines() if s.startswith("argv"))
    assert "argv ['sub/steady.py', '12', '3']" in line
    assert f"file {work / 'sub' / 'steady.py'}" in line
    assert f"path0 {work / 'sub'}" in line
    assert "name __main__" in line
    assert "stdin hello" in line
    assert "done (4, 8)" in proc.stdout
    assert "done (4, 8)" in (run / "logs" / "stdout.log").read_text()
    assert "USDT" not in proc.stderr  # torch's profiler chatter is not the script's output


def test_run_json_and_folder_name(steady_run):
    _, run, work = steady_run
    assert RUN_ID_RE.match(run.name) and "-steady-" in run.name
    m = json.loads((run / "run.json").read_text())
    assert m["schema_version"] == 1
    assert m["status"] == "failed" and m["exit_code"] == 3
    assert m["argv"] == ["sub/steady.py", "12", "3"]
    assert m["cwd"] == str(work)
    assert m["start_ns"] < m["end_ns"]
    env = m["environment"]
    assert env["torch"].startswith("2.") and env["cpu_count_logical"] >= 1 and env["cpu_model"]
    assert env["gpus"] == []
    collectors = m["collectors"]
    assert collectors["host"]["ok"] and collectors["torch_profiler"]["ok"]
    assert not collectors["nvml"]["ok"] and "NVML" in collectors["nvml"]["reason"]
    assert not collectors["cuda_memory"]["ok"] and collectors["cuda_memory"]["reason"]
    assert json.loads((run / "findings.json").read_text())["schema_version"] == 1


def test_steps_one_per_outermost_module_call(steady_run):
    _, run, _ = steady_run
    steps = pd.read_parquet(run / "metrics" / "steps.parquet")
    assert list(steps["step"]) == list(range(12))  # Sequential's children are not steps
    assert set(steps["module"]) == {"Sequential"}
    assert (steps["end_ns"] > steps["start_ns"]).all()
    assert (steps["duration_ns"] == steps["end_ns"] - steps["start_ns"]).all()
    assert steps["traced"].tolist() == [False] + [True] * 5 + [False] * 6
    assert not steps["autograd_enabled"].any()
    m = json.loads((run / "run.json").read_text())
    assert m["summary"]["count"] == 11 and m["summary"]["p50_ns"] > 0  # 12 calls: 11 iterations
    assert m["summary"]["basis"] == "iterations" and m["summary"]["module"] == "Sequential"


def test_host_samples_on_the_same_clock(steady_run):
    _, run, _ = steady_run
    host = pd.read_parquet(run / "metrics" / "host.parquet")
    for col in (
        "ts_ns",
        "proc_cpu_pct",
        "proc_rss_bytes",
        "proc_threads",
        "proc_io_read_bytes",
        "proc_ctx_switches_voluntary",
        "sys_cpu_pct",
        "sys_iowait_pct",
        "cpu0_pct",
    ):
        assert col in host.columns, col
    steps = pd.read_parquet(run / "metrics" / "steps.parquet")
    m = json.loads((run / "run.json").read_text())
    assert m["start_ns"] <= host["ts_ns"].min() <= steps["start_ns"].max()
    assert host["proc_rss_bytes"].max() > 50e6  # torch is loaded in the child
    assert not (run / "metrics" / "gpu.parquet").exists()  # not collected: absent, not zeros


def test_trace_is_torch_profiler_output_covering_the_window(steady_run):
    _, run, _ = steady_run
    (trace,) = list((run / "trace").iterdir())
    assert trace.name.endswith(".pt.trace.json.gz")
    doc = json.loads(gzip.decompress(trace.read_bytes()))
    names = [e.get("name", "") for e in doc["traceEvents"]]
    assert sorted(n for n in names if n.startswith("ProfilerStep#")) == [
        f"ProfilerStep#{i}" for i in range(1, 6)
    ]
    assert any(n == "aten::linear" for n in names)
    assert doc["record_shapes"] == 1
    # the trace's clock maps onto the run's epoch-ns clock
    steps = pd.read_parquet(run / "metrics" / "steps.parquet")
    ps = min(
        (e for e in doc["traceEvents"] if e.get("name") == "ProfilerStep#1"), key=lambda e: e["ts"]
    )
    ps_ns = round(ps["ts"] * 1000) + doc["baseTimeNanoseconds"]
    assert abs(ps_ns - steps.loc[1, "start_ns"]) < 2e9


def test_outputs_captured_for_the_first_steps(steady_run):
    import torch

    _, run, _ = steady_run
    index = json.loads((run / "outputs" / "index.json").read_text())
    assert [e["step"] for e in index] == [0, 1, 2]
    assert index[0]["tensors"] == [{"name": "0", "shape": [4, 8], "dtype": "float32"}]
    saved = torch.load(run / "outputs" / "step-0000.pt")
    assert saved["output"]["0"].shape == (4, 8) and saved["input"]["args.0"].shape == (4, 64)
    child = json.loads((run / "child.json").read_text())
    assert child["autograd_enabled_steps"] == 0 and child["training_modules"] == []
    assert child["call_site"]["file"].endswith("steady.py") and child["call_site"]["line"] == 7


def test_module_mode_and_markers(tmp_path):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "infer.py").write_text(
        textwrap.dedent(
            """
        import sys, torch, dsprof
        print("argv", sys.argv[1:], "path0", sys.path[0])
        m = torch.nn.Linear(8, 8)
        for i in range(7):
            m(torch.randn(2, 8)); m(torch.randn(2, 8))  # two calls per request
            dsprof.step()
        """
        )
    )
    out = tmp_path / "runs"
    proc = dsprof(
        "run", "--out", str(out), "--steps", "0:3", "-m", "mypkg.infer", "a", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert f"argv ['a'] path0 {tmp_path}" in proc.stdout
    run = only_run(out)
    assert "-infer-" in run.name
    steps = pd.read_parquet(run / "metrics" / "steps.parquet")
    assert list(steps["source"].unique()) == ["marker"] and len(steps) == 7
    assert json.loads((run / "run.json").read_text())["kind"] == "module"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [("missing.py", None, "no such script"), ("notpy.py", "x = (\n", "is not a Python script")],
    ids=["missing", "not-python"],
)
def test_bad_script_is_a_one_line_error(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_text(content)
    proc = dsprof("run", "--out", str(tmp_path / "runs"), name, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and name in proc.stderr and message in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_unwritable_out_fails_before_the_script_starts(tmp_path):
    (tmp_path / "s.py").write_text("open('ran', 'w').write('x')\n")
    (tmp_path / "afile").write_text("")
    proc = dsprof("run", "--out", str(tmp_path / "afile" / "runs"), "s.py", cwd=tmp_path)
    assert proc.returncode == 2 and "afile" in proc.stderr
    assert not (tmp_path / "ran").exists()


def test_crashing_script_keeps_its_data(tmp_path):
    (tmp_path / "crash.py").write_text(
        textwrap.dedent(
            """
        import torch
        m = torch.nn.Linear(4, 4)
        for i in range(4):
            m(torch.randn(2, 4))
        def broken():
            raise ValueError("boom after 4 steps")
        broken()
        """
        )
    )
    proc = dsprof("run", "--out", str(tmp_path / "runs"), "crash.py", cwd=tmp_path)
    assert proc.returncode == 1
    assert f'File "{tmp_path / "crash.py"}", line 7, in broken' in proc.stderr
    assert "ValueError: boom after 4 steps" in proc.stderr
    assert (
        "runner" not in proc.stderr.split("Traceback")[1].split("ValueError")[0]
    )  # no dsprof frames
    run = only_run(tmp_path / "runs")
    m = json.loads((run / "run.json").read_text())
    assert m["status"] == "failed" and m["exit_code"] == 1 and "boom" in m["error"]
    assert len(pd.read_parquet(run / "metrics" / "steps.parquet")) == 4
    assert list((run / "trace").iterdir())  # the partial window (steps 1-3) was exported


def test_sigint_to_the_process_group_marks_the_run_interrupted(tmp_path):
    (tmp_path / "loop.py").write_text(
        textwrap.dedent(
            """
        import time, torch
        m = torch.nn.Linear(16, 16)
        print("started", flush=True)
        while True:
            with torch.no_grad():
                m(torch.randn(2, 16))
            time.sleep(0.005)
        """
        )
    )
    out = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsprof", "run", "-q", "--out", str(out), "loop.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until steps stream in
        live = list(out.glob("*/metrics/steps.jsonl"))
        if live and live[0].stat().st_size > 2000:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    # python ends by SIGINT after an uncaught KeyboardInterrupt (a shell's $? is 130): so does dsprof
    assert proc.wait(timeout=60) == -signal.SIGINT
    run = only_run(out)
    m = json.loads((run / "run.json").read_text())
    assert m["status"] == "interrupted" and m["exit_code"] == 130
    assert m["summary"]["count"] > 10
    assert len(pd.read_parquet(run / "metrics" / "host.parquet")) >= 1
    assert list((run / "trace").iterdir())


def test_max_steps_ends_the_script_cleanly(tmp_path):
    (tmp_path / "forever.py").write_text(
        "import torch\nm = torch.nn.Linear(4, 4)\nwhile True:\n    m(torch.randn(1, 4))\n"
    )
    proc = dsprof(
        "run",
        "-q",
        "--no-trace",
        "--max-steps",
        "25",
        "--out",
        str(tmp_path / "r"),
        "forever.py",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    run = only_run(tmp_path / "r")
    assert len(pd.read_parquet(run / "metrics" / "steps.parquet")) == 25
    assert not list((run / "trace").iterdir())
    m = json.loads((run / "run.json").read_text())
    assert m["collectors"]["torch_profiler"] == {"ok": False, "reason": "--no-trace", "detail": {}}


def test_ls_and_env(steady_run):
    _, run, _ = steady_run
    proc = dsprof("ls", str(run.parent), cwd=run.parent)
    assert proc.returncode == 0 and run.name[-4:] in proc.stdout and "steady.py" in proc.stdout
    proc = dsprof("env", cwd=run.parent)
    assert proc.returncode == 0 and "nvml" in proc.stdout and "torch.profiler" in proc.stdout
