"""communication-bound: collectives take step time that compute does not hide.

Detects: time in collective communication (NCCL kernels, and non-NCCL ones such as PyTorch
    symmetric-memory `multimem_all_reduce_kernel` or custom all-reduce kernels; on CPU-only
    traces, gloo/c10d spans on the host) and how much of it overlaps computation.
Signal (GPU): on the busiest device, comm = union of collective kernels (TraceFrames.comm_kernels,
    matched by name, not by the "nccl" prefix alone), compute = union of the other kernels;
    exposed = comm - (comm ∩ compute); impact = exposed / window. CPU-only: union of host
    collective spans (TraceFrames.comm_cpu) over the window.
Thresholds: COMM_LOW 1 % (collectives are present: reported so the share is visible),
    COMM_MEDIUM 10 % and COMM_HIGH 30 % of the window exposed. HTA's communication-computation
    overlap metric motivates the exposed share; 10 % mirrors the other "worth fixing" bands.
Evidence: comm share, exposed share, overlap ratio, collective kernel counts (NCCL and not),
    the most frequent collective kernels, world size.
False positives: a rank that waits in a collective for a slower rank shows long comm time;
    that is the straggler's cost (see straggler), not bandwidth. For a dsprof multi-rank job
    (RunData.ranks) the job-level finding separates the two (dsprof.analyzers.
    rank_communication): the least collective share over the ranks is the transfer itself.
References: HTA "Communication Computation Overlap" (hta.readthedocs.io); NCCL docs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from dsprof.analyzers.rank_communication import job_communication_findings
from dsprof.analyzers.trace_scope import PerTraceAnalyzer, clamp01, ms, severity_for, share_evidence
from dsprof.core.errors import DsprofError
from dsprof.core.findings import Evidence, Finding
from dsprof.trace.frames import short_kernel_name
from dsprof.trace.intervals import busy_ns, clip, overlap_ns

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData
    from dsprof.trace.frames import TraceFrames

COMM_LOW = 0.01
COMM_MEDIUM = 0.10
COMM_HIGH = 0.30
RECIPES = ["bf16", "batching"]


def _names_summary(names: list[str], limit: int = 3) -> str:
    counts: dict[str, int] = {}
    for n in names:
        short = short_kernel_name(n)
        counts[short] = counts.get(short, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    return ", ".join(f"{n} x{c}" for n, c in top)


def _gpu_trace(tf: TraceFrames) -> list[Finding]:
    comm = tf.in_window(tf.comm_kernels)
    if not len(comm):
        return []
    lo, hi = tf.window
    device = int(comm["device"].mode().iloc[0])
    comm = comm[comm["device"] == device]
    k = tf.in_window(tf.kernels)
    compute = k[(k["device"] == device) & ~k["correlation"].isin(comm["correlation"])]
    c_s, c_e = clip(comm["ts_ns"].to_numpy(), comm["end_ns"].to_numpy(), lo, hi)
    p_s, p_e = clip(compute["ts_ns"].to_numpy(), compute["end_ns"].to_numpy(), lo, hi)
    comm_ns = busy_ns(c_s, c_e, lo, hi)
    hidden_ns = overlap_ns(c_s, c_e, p_s, p_e)
    exposed = (comm_ns - hidden_ns) / tf.window_ns
    share = comm_ns / tf.window_ns
    severity = severity_for(exposed, COMM_MEDIUM, COMM_HIGH)
    if severity is None and share >= COMM_LOW:
        severity = "low"
    if severity is None:
        return []
    names = comm["name"].astype(str)
    nccl = int(names.str.contains("nccl", case=False).sum())
    w = tf.window_label
    evidence = [
        share_evidence("comm_exposed_share", exposed, COMM_MEDIUM, tf),
        share_evidence("comm_share", share, COMM_LOW, tf),
        Evidence(metric="comm_ms", value=ms(comm_ns), unit="ms", window=w, source="trace"),
        Evidence(
            metric="comm_overlap_ratio",
            value=round(hidden_ns / comm_ns, 4) if comm_ns else 0.0,
            unit="fraction",
            window=w,
        ),
        Evidence(metric="collective_kernels", value=len(comm), unit="count", window=w),
        Evidence(metric="nccl_kernels", value=nccl, unit="count", window=w),
        Evidence(
            metric="non_nccl_collective_kernels", value=len(comm) - nccl, unit="count", window=w
        ),
        Evidence(metric="top_collectives", value=_names_summary(names.tolist()), source="trace"),
    ]
    if tf.distributed.get("world_size"):
        evidence.append(
            Evidence(
                metric="world_size",
                value=int(tf.distributed["world_size"]),
                source="distributedInfo",
            )
        )
    kinds = "NCCL" if nccl == len(comm) else ("non-NCCL" if nccl == 0 else "NCCL and non-NCCL")
    return [
        Finding(
            category="communication-bound",
            severity=severity,
            title=(
                f"Collectives take {share:.0%} of {w} ({len(comm)} {kinds} kernels: "
                f"{_names_summary(names.tolist(), 2)}); {exposed:.0%} not overlapped with compute"
            ),
            impact=clamp01(exposed),
            evidence=evidence,
            recipes=RECIPES,
            analyzer=CommunicationBoundAnalyzer.name,
        )
    ]


def _cpu_trace(tf: TraceFrames) -> list[Finding]:
    spans = tf.in_window(tf.comm_cpu)
    if not len(spans):
        return []
    comm_ns = tf.window_busy_ns(spans)
    share = comm_ns / tf.window_ns
    severity = severity_for(share, COMM_MEDIUM, COMM_HIGH, COMM_LOW)
    if severity is None:
        return []
    names = spans["name"].astype(str).tolist()
    return [
        Finding(
            category="communication-bound",
            severity=severity,
            title=f"Host collectives take {share:.0%} of {tf.window_label} ({_names_summary(names, 2)})",
            impact=clamp01(share),
            evidence=[
                share_evidence("comm_share", share, COMM_MEDIUM, tf),
                Evidence(metric="comm_ms", value=ms(comm_ns), unit="ms", window=tf.window_label),
                Evidence(
                    metric="collective_calls",
                    value=len(spans),
                    unit="count",
                    window=tf.window_label,
                ),
                Evidence(metric="top_collectives", value=_names_summary(names), source="trace"),
            ],
            recipes=RECIPES,
            analyzer=CommunicationBoundAnalyzer.name,
        )
    ]


class CommunicationBoundAnalyzer(PerTraceAnalyzer):
    """See the module docstring."""

    name: ClassVar[str] = "communication-bound"
    # a multi-rank job's root has no trace of its own, only its ranks': checked in analyze()
    requires: ClassVar[tuple[str, ...]] = ()
    on_gpu = _gpu_trace
    on_cpu = _cpu_trace

    def analyze(self, run: RunData) -> list[Finding]:
        """Exposed collective time on GPU traces; host collectives on CPU-only traces."""
        if len(run.ranks) > 1:  # a dsprof multi-rank job: the collective time every rank pays
            return job_communication_findings(run, COMM_LOW, COMM_MEDIUM, COMM_HIGH, RECIPES)
        if not run.trace_files:
            return []
        try:
            run.traces  # noqa: B018
        except DsprofError:  # unreadable: the registry has recorded it under "trace"
            return []
        return super().analyze(run)
