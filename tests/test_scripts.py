"""Script shapes a new user brings, under the real `dsprof run` / `dsprof fix` CLI.

Each script (tests/data/shapes/) runs fine with plain python; under dsprof it must exit the same,
print the same, and count one step per call of its model: from a thread pool (traced or not),
through run_in_executor, as TorchScript, with its own quantize_dynamic, behind a preprocessing
module, through forward() called directly. A Pool-based script gets no steps and says where the
work went; a stdin-fed script keeps its input in every run of `dsprof fix`.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

SHAPES = Path(__file__).parent / "data" / "shapes"


def dsprof(*args: str, cwd: Path, stdin: bytes | None = None, timeout: int = 300):
    return subprocess.run(
        [sys.executable, "-m", "dsprof", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"},
    )


def run_shape(tmp_path: Path, *args: str, options: tuple[str, ...] = ("-q",)) -> tuple:
    """`dsprof run OPTIONS shape ARGS` in tmp_path; (process, run folder)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "runs"
    script, rest = args[0], args[1:]
    proc = dsprof("run", "--out", str(out), *options, str(SHAPES / script), *rest, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    return proc, runs[-1]


def steps_of(run: Path) -> pd.DataFrame:
    assert not (run / "metrics" / "steps.jsonl").exists()  # steps.parquet holds them
    return pd.read_parquet(run / "metrics" / "steps.parquet")


def doc(run: Path, name: str) -> dict:
    return json.loads((run / name).read_text())


def trace_events(run: Path) -> list[dict]:
    (trace,) = list((run / "trace").iterdir())
    return json.loads(gzip.decompress(trace.read_bytes()))["traceEvents"]


@pytest.mark.parametrize("traced", [True, False], ids=["traced", "untraced"])
def test_thread_pool_calls_are_each_a_step_and_the_script_is_unchanged(tmp_path, traced):
    # two runs in a row here; bench/soak_threads.py runs the ten-in-a-row check
    for i in range(2):
        proc, run = run_shape(
            tmp_path / str(i),
            "threadpool.py", "200", "4", "inference_mode",
            options=("-q", "--no-analyze") if traced else ("-q", "--no-analyze", "--no-trace"),
        )  # fmt: skip
        assert proc.stdout.decode().strip() == "calls 200 ok 200 failed 0"
        steps = steps_of(run)
        assert len(steps) == 200 and sorted(steps["step"]) == list(range(200))
        assert steps["thread_id"].nunique() > 1
        assert not steps["autograd_enabled"].any()
        summary = doc(run, "run.json")["summary"]
        assert summary["basis"] == "concurrent-calls" and summary["threads"] > 1
        if traced:
            assert doc(run, "run.json")["collectors"]["torch_profiler"]["ok"]
            assert steps["traced"].sum() >= 1
            # the pool's threads are in the trace (the main thread never calls the model)
            gemm_threads = {e["tid"] for e in trace_events(run) if e.get("name") == "aten::addmm"}
            assert gemm_threads and gemm_threads <= set(steps["thread_id"])


def test_a_raising_call_in_a_thread_pool_is_the_scripts_not_a_step(tmp_path):
    proc, run = run_shape(tmp_path, "threadpool.py", "50", "2", "no_grad", "--raise-one")
    assert proc.stdout.decode().strip() == "calls 50 ok 49 failed 1"
    assert len(steps_of(run)) == 49
    assert doc(run, "child.json")["model"]["failed_calls"] == 1
    notices = {n["code"] for n in doc(run, "findings.json")["notices"]}
    assert "failed-calls" in notices


def test_run_in_executor_calls_are_steps(tmp_path):
    proc, run = run_shape(tmp_path, "executor_async.py", "50")
    assert proc.stdout.decode().strip() == "calls 50"
    steps = steps_of(run)
    assert len(steps) == 50 and steps["thread_id"].nunique() >= 1


@pytest.mark.parametrize("kind", ["script", "trace"])
def test_torchscript_models_run_and_are_timed_by_their_python_call(tmp_path, kind):
    proc, run = run_shape(tmp_path, "jit_models.py", kind, "30", options=("--no-analyze",))
    assert proc.stdout.decode().strip() == "calls 30 (2, 4)"
    steps = steps_of(run)
    assert len(steps) == 30 and set(steps["source"]) == {"script"}
    summary = doc(run, "run.json")["summary"]
    assert summary["step_source"] == "script"
    assert "TorchScript" in proc.stderr.decode()  # the summary says how steps were found


def test_worker_processes_get_no_steps_and_the_summary_says_where_the_work_went(tmp_path):
    proc, run = run_shape(tmp_path, "pool_workers.py", "8", options=())
    assert proc.stdout.decode().strip() == "tasks 8"
    assert not (run / "metrics" / "steps.parquet").exists()
    assert [w["module"] for w in doc(run, "child.json")["worker_processes"]] == ["Sequential"] * 2
    (notice,) = [
        n for n in doc(run, "findings.json")["notices"] if n["code"] == "run-without-steps"
    ]
    assert "2 worker processes called Sequential" in notice["message"]
    assert "dsprof.profile" in notice["message"]
    err = " ".join(proc.stderr.decode().split())
    assert "No findings: no steps were recorded" in err and "No findings." not in err


def test_a_script_that_quantizes_its_own_model(tmp_path):
    _, run = run_shape(tmp_path, "quantize_self.py", "30", options=())
    steps = steps_of(run)
    assert len(steps) == 30 and set(steps["module"]) == {"Sequential"}
    names = {e.get("name", "") for e in trace_events(run)}
    assert not any("Observer" in n for n in names)
    index = doc(run, "outputs/index.json")
    assert [t["shape"] for t in index[0]["tensors"]] == [[4, 16]]  # the model's output
    # quantize_dynamic's new modules are in training mode (torch's doing), which changes nothing:
    # at most a low finding, about the model and not about observers
    findings = doc(run, "findings.json")["findings"]
    train = [f for f in findings if f["category"] == "train-mode-in-inference"]
    assert all(f["severity"] == "low" and "Observer" not in json.dumps(f) for f in train)


def test_a_preprocessing_module_is_not_a_step(tmp_path):
    proc, run = run_shape(tmp_path, "preprocess_module.py", "30", options=("--no-analyze",))
    steps = steps_of(run)
    assert len(steps) == 30 and set(steps["module"]) == {"Sequential"}
    roots = {r["class"]: r["calls"] for r in doc(run, "child.json")["root_modules"]}
    assert roots == {"Normalize": 30, "Sequential": 30}
    assert "Sequential · calls of the model (module hooks)" in " ".join(
        proc.stderr.decode().split()
    )


def test_forward_called_directly_is_one_step_per_call(tmp_path):
    _, run = run_shape(tmp_path, "forward_direct.py", "40")
    steps = steps_of(run)
    assert len(steps) == 40
    assert set(steps["module"]) == {"Net"} and set(steps["source"]) == {"forward"}


@pytest.mark.slow
def test_fix_replays_the_baselines_stdin_to_every_run(tmp_path):
    script = tmp_path / "stdin_fed.py"
    script.write_bytes((SHAPES / "stdin_fed.py").read_bytes())
    lines = [" ".join(str((i + j) % 7) for j in range(16)) for i in range(40)]
    data = ("\n".join(lines) + "\n").encode()
    proc = dsprof(
        # a recipe that applies (inference-mode would be skipped: the script uses no_grad)
        "fix", "--json", "--recipe", "int8-dynamic", "--out", "runs", "stdin_fed.py",
        cwd=tmp_path, stdin=data, timeout=500,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    (base,) = list((tmp_path / "runs").iterdir())
    assert (base / "logs" / "stdin.bin").read_bytes() == data
    runs = [base, *sorted((base / "trials").iterdir())]
    assert len(runs) >= 3  # baseline, references, the trial
    for run in runs:
        assert (run / "logs" / "stdout.log").read_text().strip() == "requests 40"
        assert len(steps_of(run)) == 40


def test_large_outputs_are_captured_within_the_budget(tmp_path):
    script = tmp_path / "big_logits.py"
    script.write_text(
        textwrap.dedent(
            """
            import torch
            head = torch.nn.Linear(64, 4000)
            with torch.no_grad():
                for _ in range(5):
                    logits = head(torch.randn(4, 256, 64))  # 16 MB a call
            print("ok", tuple(logits.shape))
            """
        )
    )
    out = tmp_path / "runs"
    proc = dsprof("run", "-q", "--out", str(out), str(script), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    (run,) = list(out.iterdir())
    kept = sum(p.stat().st_size for p in (run / "outputs").glob("step-*.pt"))
    outputs = doc(run, "child.json")["outputs"]
    assert outputs["steps"] == [0, 1, 2]
    assert kept < outputs["run_bytes_cap"] + 64 * 1024  # the cap, plus torch.save's framing
    sampled = {(s["name"], s["sampled"]["rows_of"]) for s in outputs["sampled"]}
    assert ("0", 1024) in sampled
    assert "outputs-sampled" in {n["code"] for n in doc(run, "findings.json")["notices"]}


def test_profile_api_counts_thread_pool_calls(tmp_path):
    script = tmp_path / "api_threads.py"
    script.write_text(
        textwrap.dedent(
            """
            from concurrent.futures import ThreadPoolExecutor
            import torch, dsprof
            model = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ReLU()).eval()
            def call(i):
                with torch.no_grad():
                    return model(torch.randn(2, 32))
            with dsprof.profile(out="runs", analyze=False) as run:
                with ThreadPoolExecutor(3) as pool:
                    outs = list(pool.map(call, range(60)))
            print(len(outs), run.path)
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    count, folder = proc.stdout.split()
    assert count == "60"
    assert len(steps_of(tmp_path / folder)) == 60
