"""Small hand-built runs for the CPU analyzer tests.

A trace here is a real Kineto Chrome-trace file in the current schema (cpu_op / user_annotation
events with the args torch.profiler writes under record_shapes), written to tmp_path and parsed
by dsprof.trace; the RunData around it is built by hand, so every number in a test is exact.
Times are given in microseconds, as Kineto writes them.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pandas as pd

from dsprof.core.child import ChildInfo
from dsprof.core.manifest import Environment, GpuInfo, RunManifest
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import RunData

BASE_NS = 1_700_000_000_000_000_000


def op(
    name: str,
    ts_us: float,
    dur_us: float,
    *,
    tid: int = 1,
    dims: list[Any] | None = None,
    types: list[str] | None = None,
    concrete: list[str] | None = None,
    seq: int | None = None,
) -> dict[str, Any]:
    """One cpu_op event; shape args only when given (as without record_shapes)."""
    args: dict[str, Any] = {"External id": 1}
    if dims is not None:
        args["Input Dims"] = dims
        args["Input type"] = types if types is not None else ["float"] * len(dims)
        args["Concrete Inputs"] = concrete if concrete is not None else [""] * len(dims)
    if seq is not None:
        args["Sequence number"] = seq
        args["Fwd thread id"] = 0
    return {
        "ph": "X",
        "cat": "cpu_op",
        "name": name,
        "pid": 1,
        "tid": tid,
        "ts": ts_us,
        "dur": dur_us,
        "args": args,
    }


def linear(
    ts_us: float,
    dur_us: float,
    rows: int,
    k: int,
    n: int,
    *,
    dtype: str = "float",
    seq: int | None = None,
) -> list[dict[str, Any]]:
    """aten::linear with its nested aten::addmm, as eager nn.Linear records them."""
    return [
        op(
            "aten::linear", ts_us, dur_us, dims=[[rows, k], [n, k], [n]], types=[dtype] * 3, seq=seq
        ),
        op(
            "aten::addmm",
            ts_us + 1,
            dur_us - 2,
            dims=[[n], [rows, k], [k, n], [], []],
            types=[dtype, dtype, dtype, "Scalar", "Scalar"],
            seq=seq,
        ),
    ]


def kernel(ts_us: float, dur_us: float) -> dict[str, Any]:
    """One GPU kernel event: its presence makes the trace a GPU trace."""
    return {
        "ph": "X",
        "cat": "kernel",
        "name": "ampere_sgemm_128x64_nn",
        "pid": 0,
        "tid": 7,
        "ts": ts_us,
        "dur": dur_us,
        "args": {"device": 0, "stream": 7, "correlation": 1},
    }


def profiler_steps(step_us: float, count: int, first: int = 1) -> list[dict[str, Any]]:
    """ProfilerStep#N annotations back to back, each step_us long, starting at ts 0."""
    return [
        {
            "ph": "X",
            "cat": "user_annotation",
            "name": f"ProfilerStep#{first + i}",
            "pid": 1,
            "tid": 1,
            "ts": i * step_us,
            "dur": step_us,
            "args": {},
        }
        for i in range(count)
    ]


def write_trace(root: Path, events: list[dict[str, Any]]) -> Path:
    """A trace file under root/trace/ in the layout dsprof run writes."""
    path = root / "trace" / "host_1.pt.trace.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"schemaVersion": 1, "baseTimeNanoseconds": BASE_NS, "traceEvents": events}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def steps_frame(
    durations_ms: list[float],
    *,
    autograd: bool = False,
    training: int = 0,
    source: str = "module",
    gap_ms: float = 0.0,
) -> pd.DataFrame:
    """steps.parquet rows: steps of the given durations, gap_ms apart."""
    starts, t = [], BASE_NS
    for d in durations_ms:
        starts.append(t)
        t += int((d + gap_ms) * 1e6)
    dur = [int(d * 1e6) for d in durations_ms]
    n = len(dur)
    return pd.DataFrame(
        {
            "step": range(n),
            "start_ns": starts,
            "end_ns": [s + d for s, d in zip(starts, dur, strict=True)],
            "duration_ns": dur,
            "module": ["Net"] * n,
            "source": [source] * n,
            "traced": [True] * n,
            "autograd_enabled": [autograd] * n,
            "training_modules": [training] * n,
        }
    )


def host_frame(
    seconds: float,
    *,
    cpu_pct: float,
    procs: int = 1,
    invol_per_s: float = 0.0,
    sys_pct: float | None = None,
    hz: float = 10.0,
) -> pd.DataFrame:
    """host.parquet samples over `seconds` from BASE_NS with constant rates."""
    n = int(seconds * hz) + 1
    ts = [BASE_NS + int(i * 1e9 / hz) for i in range(n)]
    return pd.DataFrame(
        {
            "ts_ns": ts,
            "proc_cpu_pct": [cpu_pct] * n,
            "proc_count": [procs] * n,
            "proc_ctx_switches_involuntary": [int(i * invol_per_s / hz) for i in range(n)],
            "sys_cpu_pct": [sys_pct if sys_pct is not None else cpu_pct / 2] * n,
        }
    )


def make_run(
    root: Path,
    *,
    events: list[dict[str, Any]] | None = None,
    steps: pd.DataFrame | None = None,
    host: pd.DataFrame | None = None,
    child_info: dict[str, Any] | None = None,
    gpus: int = 0,
    cpu_count: int = 4,
) -> RunData:
    """A RunData over an optional synthetic trace; GPUs only in run.json when gpus > 0."""
    env = Environment(
        python="3.11",
        platform="linux",
        hostname="h",
        cpu_model="test",
        cpu_count_logical=cpu_count,
        cpu_count_physical=cpu_count,
        gpus=[GpuInfo(index=i, name="NVIDIA H100") for i in range(gpus)],
    )
    manifest = RunManifest(
        run_id="20260101-000000-t-abcd",
        argv=["t.py"],
        target="t.py",
        cwd="/",
        start_ns=BASE_NS,
        environment=env,
    )
    files = [write_trace(root, events)] if events else []
    return RunData(
        paths=RunPaths(root),
        manifest=manifest,
        steps=steps,
        host=host,
        child_info=ChildInfo.model_validate(child_info) if child_info is not None else None,
        trace_files=files,
    )


GPU_TRACE = Path(__file__).parent / "data" / "traces" / "hta" / "test.json.gz"


@functools.cache
def gpu_trace_run() -> RunData:
    """A real GPU trace (HTA's test trace: fp32 GEMMs on an A100) as a bare-trace run, parsed
    once per session: its CPU-side aten::linear/addmm times are launch times, not math."""
    run = RunData(paths=RunPaths(GPU_TRACE.parent), manifest=None, trace_files=[GPU_TRACE])
    run.traces  # noqa: B018 - parse now, once
    return run
