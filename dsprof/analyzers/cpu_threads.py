"""cpu-threads: intra-op threads below the usable cores, or more threads than cores can run.

Detects
    Under-subscription: torch's intra-op pool (torch.get_num_threads() in the child) smaller than
    the cores the process may use (affinity mask and cgroup quota, child.json usable_cpus), so
    parallel ops (GEMM, conv, large elementwise) leave cores idle.
    Over-subscription: more compute threads than cores: the pool itself larger than the usable
    cores, or several busy processes each with a pool, with the process tree saturating the
    cores and being preempted (involuntary context switches).
Signal
    child.json torch_num_threads; usable cores from child.json usable_cpus (run.json core counts
    as a fallback, lower confidence); the parallel share p of the traced window: outermost
    cpu_ops that ATen parallelises (GEMM/conv family always, others when their first input has
    at least GRAIN_SIZE elements); host.parquet proc_cpu_pct, proc_count and
    proc_ctx_switches_involuntary over the steps' span.
Thresholds
    GRAIN_SIZE = 32768: at::internal::GRAIN_SIZE, below which ATen runs an op on one thread.
    Under-subscription impact (Amdahl) = p * (1 - threads / usable); severity on the CPU scale
    of dsprof.analyzers.cpu_facts (IMPACT_MEDIUM 0.10, IMPACT_HIGH 0.30).
    Over-subscription: OVERSUB_FACTOR = 1.5 compute threads per usable core; the tree saturated
    at SATURATED_SHARE = 0.9 of the usable cores; INVOLUNTARY_CS_PER_CORE = 500 /s per core,
    between what was measured here (2-core AMD EPYC, torch 2.13, 1024-wide MLP at batch 64,
    python bench/cpu_overheads.py): 6 /s with 1 thread and 233 /s with 2 (up to ~120 per core),
    ~2000 /s with 4 or 8 threads (~1000 per core). Impact = p * (1 - usable / threads), an upper
    bound (time-sliced threads lose at most their share), reported with confidence 0.5;
    severity medium, high when also the impact reaches IMPACT_HIGH and the switch rate is above
    the threshold.
Evidence
    torch threads, usable cores and their source, parallel share, process-tree CPU use, process
    count, involuntary context switches per second per core, other processes' CPU use.
False positives
    Other processes using the "idle" cores (a shared machine) make more threads useless: their
    CPU use is evidence and lowers confidence. DataLoader workers run one thread each, so several
    processes alone are not over-subscription: the tree must also saturate the cores and thrash.
References
    PyTorch CPU threading docs (torch.set_num_threads, "intra-op parallelism"); PyTorch
    Performance Tuning Guide (CPU: avoid oversubscription, OMP_NUM_THREADS per process);
    ATen Parallel.h GRAIN_SIZE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import orjson

from dsprof.analyzers import cpu_facts
from dsprof.core.findings import Evidence, Finding, Severity

if TYPE_CHECKING:
    import pandas as pd

    from dsprof.store.run_store import RunData
    from dsprof.trace import TraceFrames

GRAIN_SIZE = 32768
OVERSUB_FACTOR = 1.5
SATURATED_SHARE = 0.9
INVOLUNTARY_CS_PER_CORE = 500.0
# other processes using this much of the machine make extra threads doubtful (lower confidence)
OTHER_LOAD_PCT = 25.0
RECIPES = ["threads"]
_PARALLEL_PREFIXES = (
    "aten::linear",
    "aten::addmm",
    "aten::mm",
    "aten::bmm",
    "aten::matmul",
    "aten::baddbmm",
    "aten::conv",
    "aten::_convolution",
    "aten::mkldnn_convolution",
    "aten::scaled_dot_product_attention",
)


class CpuThreadsAnalyzer:
    """Intra-op threads versus usable cores (see the module docstring)."""

    name: ClassVar[str] = "cpu-threads"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("child_info",)

    def analyze(self, run: RunData) -> list[Finding]:
        """At most one finding: under- or over-subscription."""
        facts = run.facts
        threads, usable, usable_source = (
            facts.torch_threads,
            facts.usable_cores,
            facts.usable_cores_source,
        )
        if not isinstance(threads, int) or threads < 1 or usable is None:
            return []
        traces = cpu_facts.run_traces(run)
        host = _host_in_steps(run)
        p, p_source = _parallel_share(traces, host, threads)
        base = [
            Evidence(metric="torch_num_threads", value=threads, source="child.json"),
            Evidence(metric="usable_cpus", value=usable, unit="cores", source=usable_source),
        ]
        if p is not None:
            base.append(
                Evidence(
                    metric="parallel_share",
                    value=round(p, 4),
                    unit="of window",
                    window=cpu_facts.window_label(traces),
                    source=p_source,
                )
            )
        base += _host_evidence(host, usable)
        confidence = 1.0 if facts.usable_cores_measured else 0.7
        if _other_load_pct(host, usable) >= OTHER_LOAD_PCT:
            confidence *= 0.6
        if threads < usable:
            return self._under(threads, usable, p, base, confidence)
        return self._over(run, threads, usable, p, host, base)

    def _under(
        self,
        threads: int,
        usable: float,
        p: float | None,
        evidence: list[Evidence],
        confidence: float,
    ) -> list[Finding]:
        if p is None:
            return []
        impact = p * (1.0 - threads / usable)
        severity = cpu_facts.severity_for(impact)
        if severity is None:
            return []
        evidence.append(
            Evidence(
                metric="estimated_saving",
                value=round(impact, 4),
                unit="of window",
                threshold=cpu_facts.IMPACT_MEDIUM,
                source="Amdahl: parallel_share * (1 - threads / usable)",
            )
        )
        title = (
            f"torch uses {threads} intra-op thread{'s' if threads > 1 else ''} on {usable:g} "
            f"usable cores; {p:.0%} of the time is parallel work, ~{impact:.0%} to gain"
        )
        return [
            cpu_facts.cpu_finding(
                self.name, severity, title, impact, evidence, RECIPES, confidence=confidence
            )
        ]

    def _over(
        self,
        run: RunData,
        threads: int,
        usable: float,
        p: float | None,
        host: pd.DataFrame | None,
        evidence: list[Evidence],
    ) -> list[Finding]:
        procs = int(host["proc_count"].max()) if host is not None and "proc_count" in host else 1
        cpu_pct = _mean(host, "proc_cpu_pct")
        saturated = cpu_pct is not None and cpu_pct >= SATURATED_SHARE * 100.0 * usable
        cs_rate = _involuntary_rate(host, usable)
        thrashing = cs_rate is not None and cs_rate >= INVOLUNTARY_CS_PER_CORE
        # DataLoader workers run one intra-op thread each; other processes may hold a full pool
        workers = min(_dataloader_workers(run), procs - 1)
        tree = threads + workers + (procs - 1 - workers) * threads
        if threads >= OVERSUB_FACTOR * usable:
            demanded = max(threads, tree if saturated and thrashing else threads)
        elif procs > 1 and saturated and thrashing and tree >= OVERSUB_FACTOR * usable:
            demanded = tree
        else:
            return []
        impact = (p if p is not None else 1.0) * (1.0 - usable / demanded)
        severity: Severity = "high" if impact >= cpu_facts.IMPACT_HIGH and thrashing else "medium"
        evidence.append(
            Evidence(
                metric="compute_threads_demanded",
                value=demanded,
                threshold=OVERSUB_FACTOR * usable,
                source="torch threads + 1 per DataLoader worker + a pool per other process",
            )
        )
        evidence.append(
            Evidence(
                metric="estimated_saving",
                value=round(impact, 4),
                unit="of window",
                source="upper bound: parallel_share * (1 - usable / threads)",
            )
        )
        title = (
            f"{demanded} compute threads compete for {usable:g} cores"
            + (f" across {procs} processes" if demanded != threads else "")
            + "; set torch.set_num_threads to the cores each process really has"
        )
        return [
            cpu_facts.cpu_finding(
                self.name, severity, title, impact, evidence, RECIPES, confidence=0.5
            )
        ]


def _dataloader_workers(run: RunData) -> int:
    """Worker processes of the script's DataLoaders (child.json dataloaders)."""
    return sum(d.num_workers for d in run.child.dataloaders)


def _host_in_steps(run: RunData) -> pd.DataFrame | None:
    """host.parquet samples within the span of the model steps (all samples without steps)."""
    host = run.host
    if host is None or len(host) == 0:
        return None
    steps = cpu_facts.model_steps(run)
    if len(steps):
        inside = host[
            (host["ts_ns"] >= steps["start_ns"].min()) & (host["ts_ns"] <= steps["end_ns"].max())
        ]
        if len(inside) >= 2:
            return inside.reset_index(drop=True)
    return host


def _parallel_share(
    traces: list[TraceFrames], host: pd.DataFrame | None, threads: int
) -> tuple[float | None, str]:
    """Share of the window in ops ATen runs in parallel; from CPU use when there is no trace."""
    if traces:
        busy = 0
        for tf in traces:
            ops = cpu_facts.outermost(tf.in_window(tf.cpu_ops))
            if len(ops) == 0:
                continue
            names = ops["name"].astype(str)
            gemm = names.str.startswith(_PARALLEL_PREFIXES)
            big = _first_input_elements(ops) >= GRAIN_SIZE
            busy += int(ops["dur_ns"][gemm.to_numpy() | big].sum())
        return min(
            busy / cpu_facts.window_ns(traces), 1.0
        ), "trace cpu_ops (GEMM/conv, >= GRAIN_SIZE)"
    cpu_pct = _mean(host, "proc_cpu_pct")
    if cpu_pct is None:
        return None, ""
    return min(cpu_pct / (100.0 * threads), 1.0), "host.parquet proc_cpu_pct / threads"


def _first_input_elements(ops: pd.DataFrame) -> np.ndarray:
    """Element count of each op's first input (0 when shapes were not recorded)."""
    if "input_dims" not in ops:
        return np.zeros(len(ops))
    texts = ops["input_dims"].astype(object)
    counts = {}
    for text in texts.unique():  # once per unique shape list
        shapes = orjson.loads(text) if text else None
        first = shapes[0] if isinstance(shapes, list) and shapes else None
        counts[text] = float(np.prod(first)) if isinstance(first, list) and first else 0.0
    return texts.map(counts).to_numpy(dtype=float)


def _mean(host: pd.DataFrame | None, column: str) -> float | None:
    if host is None or column not in host or host[column].isna().all():
        return None
    return float(host[column].mean())


def _involuntary_rate(host: pd.DataFrame | None, usable: float) -> float | None:
    """Involuntary context switches per second per usable core over the samples."""
    col = "proc_ctx_switches_involuntary"
    if host is None or col not in host or len(host) < 2:
        return None
    seconds = (int(host["ts_ns"].iloc[-1]) - int(host["ts_ns"].iloc[0])) / 1e9
    if seconds <= 0:
        return None
    return float(host[col].iloc[-1] - host[col].iloc[0]) / seconds / usable


def _other_load_pct(host: pd.DataFrame | None, usable: float) -> float:
    """Mean CPU use of other processes, in percent of the machine."""
    sys_pct, own = _mean(host, "sys_cpu_pct"), _mean(host, "proc_cpu_pct")
    if sys_pct is None or own is None:
        return 0.0
    return max(sys_pct - own / usable, 0.0)


def _host_evidence(host: pd.DataFrame | None, usable: float) -> list[Evidence]:
    out = []
    if (cpu := _mean(host, "proc_cpu_pct")) is not None:
        out.append(
            Evidence(
                metric="process_cpu",
                value=round(cpu, 1),
                unit="% (100 = 1 core)",
                source="host.parquet proc_cpu_pct",
            )
        )
    if (rate := _involuntary_rate(host, usable)) is not None:
        out.append(
            Evidence(
                metric="involuntary_switches",
                value=round(rate, 1),
                unit="/s/core",
                threshold=INVOLUNTARY_CS_PER_CORE,
                source="host.parquet",
            )
        )
    if host is not None and "sys_cpu_pct" in host:
        out.append(
            Evidence(
                metric="other_processes_cpu",
                value=round(_other_load_pct(host, usable), 1),
                unit="% of machine",
                threshold=OTHER_LOAD_PCT,
                source="host.parquet",
            )
        )
    return out
