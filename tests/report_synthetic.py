"""Synthetic run folders for the report, dashboard and compare tests.

Built through the store API (RunPaths, write_model) with parquet tables that follow
docs/run-folder.md column for column, on a fixed clock so the golden files are exact.
Names carry HTML on purpose: every renderer must show them as text.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dsprof.core.findings import Evidence, Finding, FindingsDocument
from dsprof.core.fix import (
    Applicability,
    ApplyResult,
    Drift,
    FixSession,
    Trial,
    Verdict,
    reference_noise,
)
from dsprof.core.manifest import CollectorStatus, Environment, GpuInfo, RunManifest, StepSummary
from dsprof.store.documents import write_model
from dsprof.store.layout import RunPaths

START_NS = 1_767_268_800_000_000_000  # 2026-01-01 12:00:00 UTC
EVIL_OP = "</script><b>x"
EVIL_MODULE = "<b>Evil</b>Net"
RUN_ID = "20260101-120000-synthetic-abcd"


def step_table(n: int, base_ms: float, start_ns: int, traced: range | None = None) -> pd.DataFrame:
    """n steps back to back: durations cycle around base_ms, one outlier at the end."""
    durations = [int((base_ms + (i % 5) * 0.2 * base_ms / 10) * 1e6) for i in range(n)]
    durations[-1] = int(base_ms * 2.5e6)
    starts, t = [], start_ns + 200_000_000
    for d in durations:
        starts.append(t)
        t += d + 1_000_000
    traced = traced if traced is not None else range(1, 4)
    return pd.DataFrame(
        {
            "step": pd.array(range(n), dtype="int64"),
            "start_ns": pd.array(starts, dtype="int64"),
            "end_ns": pd.array(
                [s + d for s, d in zip(starts, durations, strict=True)], dtype="int64"
            ),
            "duration_ns": pd.array(durations, dtype="int64"),
            "module": [EVIL_MODULE] * n,
            "source": ["module"] * n,
            "traced": [i in traced for i in range(n)],
            "autograd_enabled": [False] * n,
            "training_modules": pd.array([0] * n, dtype="int64"),
        }
    )


def host_table(start_ns: int, seconds: float) -> pd.DataFrame:
    n = int(seconds * 10)
    ts = [start_ns + i * 100_000_000 for i in range(n)]
    return pd.DataFrame(
        {
            "ts_ns": pd.array(ts, dtype="int64"),
            "proc_cpu_pct": [150.0 + (i % 7) for i in range(n)],
            "proc_rss_bytes": pd.array([800 * 2**20 + i * 2**20 for i in range(n)], dtype="int64"),
            "proc_threads": pd.array([8] * n, dtype="int64"),
            "proc_count": pd.array([1] * n, dtype="int64"),
            "sys_cpu_pct": [80.0 + (i % 3) for i in range(n)],
            "sys_iowait_pct": [0.5] * n,
        }
    )


def gpu_table(start_ns: int, seconds: float) -> pd.DataFrame:
    n = int(seconds * 10)
    rows = []
    for i in range(n):
        for g in (0, 1):
            rows.append(
                {
                    "ts_ns": start_ns + i * 100_000_000,
                    "gpu_index": g,
                    "util_gpu_pct": float(40 + 10 * g + (i % 4)),
                    "util_mem_pct": 20.0,
                    "mem_used_bytes": (4 + g) * 2**30,
                    "mem_total_bytes": 80 * 2**30,
                    "power_w": 210.0 + i % 5,
                }
            )
    return pd.DataFrame(rows)


def cuda_memory_table(steps: pd.DataFrame) -> pd.DataFrame:
    n = len(steps)
    return pd.DataFrame(
        {
            "step": steps["step"],
            "ts_ns": steps["end_ns"],
            "device": pd.array([0] * n, dtype="int64"),
            "allocated_bytes": pd.array([3 * 2**30 + i * 2**24 for i in range(n)], dtype="int64"),
            "reserved_bytes": pd.array([4 * 2**30 + i * 2**25 for i in range(n)], dtype="int64"),
            "allocated_peak_bytes": pd.array([3 * 2**30 + n * 2**24] * n, dtype="int64"),
        }
    )


def findings_doc() -> FindingsDocument:
    return FindingsDocument(
        findings=[
            Finding(
                category="gpu-idle",
                severity="high",
                title=f"GPU idle 42% of the step, waiting on {EVIL_OP}",
                impact=0.42,
                confidence=0.9,
                analyzer="gpu-idle",
                evidence=[
                    Evidence(
                        metric="gpu_idle_share",
                        value=0.42,
                        unit="",
                        threshold=0.2,
                        window="steps 1-3",
                        source="trace",
                    ),
                    Evidence(metric="top_host_op", value=EVIL_OP, source="trace"),
                ],
                recipes=["cuda-graphs", "compile"],
                detail=f"module {EVIL_MODULE} launches from Python",
            ),
            Finding(
                category="small-batch",
                severity="medium",
                title="batch 1: throughput left on the table",
                impact=0.2,
                evidence=[Evidence(metric="batch_size", value=1, threshold=8, source="child.json")],
                recipes=["batching"],
            ),
        ]
    )


# the closing reference run as a busy 2-core machine gave it: far too wide to call stable
NOISE = reference_noise(1.02, 0.19, 3.18, 0.03)


def fix_session(baseline: str) -> FixSession:
    def trial(
        tid: str,
        recipes: list[str],
        speedup: float,
        ci: tuple[float, float],
        outcome: str,
        accepted: bool,
        combined: bool = False,
    ) -> Trial:
        # as `dsprof fix` writes them: the trial id names the recipes, the folder is a run id
        return Trial(
            trial_id="+".join(recipes),
            recipes=recipes,
            run_dir=f"trials/{tid}",
            run_id=tid,
            combined=combined,
            metrics=StepSummary(count=20, p50_ns=int(10e6 / speedup), p99_ns=int(14e6 / speedup)),
            verdict=Verdict(
                accepted=accepted,
                outcome=outcome,
                speedup=speedup,
                ci95=ci,  # type: ignore[arg-type]
                drift=Drift(tensors_compared=2, max_abs=1e-3, cosine=0.99999),
                reason=f"interval {ci[0]:.2f}-{ci[1]:.2f}",
            ),
        )

    return FixSession(
        baseline_run=baseline,
        script="infer.py",
        start_ns=START_NS,
        baseline=StepSummary(count=20, p50_ns=10_000_000),
        candidates=[
            Applicability(
                recipe="compile", applies=True, reason="fp32 Linear time", risk="approximate"
            ),
            Applicability(
                recipe="cuda-graphs", applies=False, reason="no CUDA on this machine", risk="exact"
            ),
        ],
        trials=[
            trial("20260101-120100-compile-0001", ["compile"], 1.8, (1.7, 1.9), "win", True),
            trial(
                f"20260101-120200-{EVIL_MODULE[4:8]}-0002",
                [EVIL_OP],
                1.01,
                (0.97, 1.05),
                "no-measurable-change",
                False,
            ),
            trial("20260101-120300-combo-0003", ["compile"], 1.8, (1.72, 1.88), "win", True, True),
        ],
        accepted=["compile"],
        reference=NOISE,
        reference_check=NOISE.sentence,
        apply=ApplyResult(
            script="infer.py",
            backup="infer.py.orig",
            diff="--- infer.py\n+++ infer.py\n@@ -3 +3,2 @@\n model = Net()\n+model.compile()  # </script><b>x\n",
        ),
    )


def make_run(
    runs_dir: Path,
    run_id: str = RUN_ID,
    *,
    base_ms: float = 10.0,
    n_steps: int = 20,
    gpu: bool = True,
    ranks: int = 0,
    fix: bool = False,
    findings: bool = True,
    status: str = "ok",
) -> Path:
    """A complete run folder under runs_dir; returns its path."""
    paths = RunPaths(runs_dir / run_id)
    paths.make_dirs()
    steps = step_table(n_steps, base_ms, START_NS)
    end_ns = int(steps["end_ns"].max()) + 300_000_000
    seconds = (end_ns - START_NS) / 1e9
    steps.to_parquet(paths.steps, index=False)
    host_table(START_NS, seconds).to_parquet(paths.host, index=False)
    if gpu:
        gpu_table(START_NS, seconds).to_parquet(paths.gpu, index=False)
        cuda_memory_table(steps).to_parquet(paths.cuda_memory, index=False)
    for rank in range(ranks):
        rank_paths = paths.rank(rank)
        rank_paths.make_dirs()
        step_table(n_steps, base_ms * (1.6 if rank == ranks - 1 else 1.0), START_NS).to_parquet(
            rank_paths.steps, index=False
        )
    manifest = RunManifest(
        run_id=run_id,
        argv=["infer.py", "--batch", "1"],
        target=f"infer_{EVIL_MODULE}.py",
        cwd="/work/project",
        start_ns=START_NS,
        end_ns=None if status == "running" else end_ns,
        status=status,  # type: ignore[arg-type]
        exit_code=None if status == "running" else 0,
        environment=Environment(
            python="3.11.9",
            platform="Linux-x86_64",
            hostname="box",
            cpu_model="Xeon",
            cpu_count_logical=2,
            memory_total_bytes=24 * 2**30,
            torch="2.13.0",
            gpus=[GpuInfo(index=0, name="NVIDIA H100 80GB HBM3")] if gpu else [],
        ),
        collectors={
            "host": CollectorStatus(ok=True),
            "nvml": CollectorStatus(ok=gpu, reason="" if gpu else "NVML library not found"),
        },
        world_size=ranks or None,
        ranks=list(range(ranks)),
    )
    write_model(paths.manifest, manifest)
    if findings:
        write_model(paths.findings, findings_doc())
    if fix:
        write_model(paths.fix_session, fix_session(run_id))
    return paths.root
