"""memory-fragmentation: the CUDA caching allocator holds far more than the tensors need, or retries.

Detects: reserved-but-unallocated memory at the allocation peak (blocks the allocator cannot
    reuse for the requested sizes), inactive split blocks, and cudaMalloc retries (the allocator
    ran out, freed its whole cache, synchronised, and tried again: slow and a step from OOM).
Signal:
    - cuda_memory.parquet (torch.cuda.memory_stats() at step ends): per device, at the sample
      with the highest allocated bytes, waste = (reserved - allocated) / reserved; the largest
      inactive_split_bytes / reserved; num_alloc_retries and num_ooms growth over the run;
    - trace [memory] events on CUDA devices (Device Type 1, with Total Allocated / Total
      Reserved): the same waste at the moment of peak Total Allocated.
Thresholds: WASTE_MEDIUM 25 % and WASTE_HIGH 50 % of reserved memory unused at the peak; any
    alloc retry is high (PyTorch's CUDA semantics notes: retries mean the allocator flushed its
    cache; PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True is the documented remedy for
    fragmentation). SPLIT_MEDIUM 25 % of reserved in inactive split blocks.
Impact: fragmentation costs memory, not step time, unless the allocator retries; impact is
    FRAGMENTATION_IMPACT (memory only) or RETRY_IMPACT (retries seen), so time findings rank first.
Evidence: reserved and allocated at the peak, waste, inactive split bytes, retries, OOMs.
False positives: a run whose peak is a one-off (model load) while steady state is compact.
References: PyTorch docs "CUDA semantics: Memory management / Optimizing memory usage with
    PYTORCH_CUDA_ALLOC_CONF"; torch.cuda.memory_stats documentation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from dsprof.analyzers.trace_scope import gpu_traces, severity_for, worse_severity
from dsprof.core.findings import Evidence, Finding, Severity

if TYPE_CHECKING:
    import pandas as pd

    from dsprof.store.run_store import RunData
    from dsprof.trace.frames import TraceFrames

WASTE_MEDIUM = 0.25
WASTE_HIGH = 0.50
SPLIT_MEDIUM = 0.25
SPLIT_HIGH = 0.50
FRAGMENTATION_IMPACT = 0.05
RETRY_IMPACT = 0.20
CUDA_DEVICE_TYPE = 1
GIB = 2**30


def _from_samples(df: pd.DataFrame) -> list[Finding]:
    findings = []
    for device, g in df.groupby("device"):
        peak = g.loc[g["allocated_bytes"].idxmax()]
        reserved = max(int(peak["reserved_bytes"]), 1)
        waste = 1 - int(peak["allocated_bytes"]) / reserved
        split = (
            float((g["inactive_split_bytes"] / g["reserved_bytes"].clip(lower=1)).max())
            if "inactive_split_bytes" in g
            else 0.0
        )
        retries = (
            int(g["num_alloc_retries"].max() - g["num_alloc_retries"].min())
            if "num_alloc_retries" in g
            else 0
        )
        retries = max(retries, int(g["num_alloc_retries"].max()) if "num_alloc_retries" in g else 0)
        ooms = int(g["num_ooms"].max()) if "num_ooms" in g else 0
        severity: Severity | None = worse_severity(
            severity_for(waste, WASTE_MEDIUM, WASTE_HIGH),
            severity_for(split, SPLIT_MEDIUM, SPLIT_HIGH),
            "high" if retries or ooms else None,
        )
        if severity is None:
            continue
        evidence = [
            Evidence(metric="reserved_unused_at_peak", value=round(waste, 4), unit="fraction",
                     threshold=WASTE_MEDIUM, window=f"step {int(peak['step'])}", source="cuda_memory.parquet"),
            Evidence(metric="allocated_peak_bytes", value=int(peak["allocated_bytes"]), unit="bytes", source="cuda_memory.parquet"),
            Evidence(metric="reserved_at_peak_bytes", value=reserved, unit="bytes", source="cuda_memory.parquet"),
            Evidence(metric="inactive_split_share", value=round(split, 4), unit="fraction",
                     threshold=SPLIT_MEDIUM, source="cuda_memory.parquet"),
            Evidence(metric="num_alloc_retries", value=retries, unit="count", threshold=0, source="cuda_memory.parquet"),
            Evidence(metric="num_ooms", value=ooms, unit="count", source="cuda_memory.parquet"),
        ]  # fmt: skip
        what = (
            f"{retries} allocator retries"
            if retries
            else f"{waste:.0%} of reserved memory unused at the peak"
        )
        findings.append(
            Finding(
                category="memory-fragmentation",
                severity=severity,
                title=f"CUDA allocator on device {device}: {what} ({reserved / GIB:.1f} GiB reserved)",
                impact=RETRY_IMPACT if retries or ooms else FRAGMENTATION_IMPACT,
                evidence=evidence,
                recipes=["alloc-conf"],
                analyzer=MemoryFragmentationAnalyzer.name,
            )
        )
    return findings


def _from_trace(tf: TraceFrames) -> list[Finding]:
    m = tf.memory
    m = m[
        (m["device_type"] == CUDA_DEVICE_TYPE)
        & (m["total_reserved"] > 0)
        & (m["total_allocated"] >= 0)
    ]
    if not len(m):
        return []
    peak = m.loc[m["total_allocated"].idxmax()]
    reserved = int(peak["total_reserved"])
    waste = 1 - int(peak["total_allocated"]) / reserved
    severity = severity_for(waste, WASTE_MEDIUM, WASTE_HIGH)
    if severity is None:
        return []
    src = f"trace [memory] events: {tf.path.name}"
    return [
        Finding(
            category="memory-fragmentation",
            severity=severity,
            title=(
                f"CUDA allocator: {waste:.0%} of reserved memory unused at the allocation peak "
                f"({int(peak['total_allocated']) / GIB:.1f} of {reserved / GIB:.1f} GiB)"
            ),
            impact=FRAGMENTATION_IMPACT,
            evidence=[
                Evidence(
                    metric="reserved_unused_at_peak",
                    value=round(waste, 4),
                    unit="fraction",
                    threshold=WASTE_MEDIUM,
                    window=tf.window_label,
                    source=src,
                ),
                Evidence(
                    metric="allocated_peak_bytes",
                    value=int(peak["total_allocated"]),
                    unit="bytes",
                    source=src,
                ),
                Evidence(metric="reserved_at_peak_bytes", value=reserved, unit="bytes", source=src),
                Evidence(metric="memory_events", value=len(m), unit="count", source=src),
            ],
            recipes=["alloc-conf"],
            analyzer=MemoryFragmentationAnalyzer.name,
        )
    ]


class MemoryFragmentationAnalyzer:
    """See the module docstring."""

    name: ClassVar[str] = "memory-fragmentation"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ()

    def analyze(self, run: RunData) -> list[Finding]:
        """cuda_memory samples when collected, else the traces' [memory] events."""
        if run.cuda_memory is not None and len(run.cuda_memory):
            return _from_samples(run.cuda_memory)
        findings: list[Finding] = []
        for tf in gpu_traces(run):
            findings.extend(_from_trace(tf))
        return sorted(findings, key=lambda f: -f.impact)[:1] if len(findings) > 1 else findings
