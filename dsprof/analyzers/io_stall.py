"""io-stall: the step waits for input: DataLoader fetches, pageable host-to-device copies, iowait.

Detects: time the inference loop spends getting its next batch, on GPU and CPU runs alike.
Signal:
    - DataLoader share: union of `enumerate(DataLoader)#...__next__` spans (recorded by
      torch.profiler around every fetch) inside the analysis window, over the window. On a GPU
      trace what counts is the GPU-idle time the fetches leave (dsprof.trace.idle, cause
      "data loading"): a fetch that waits while the GPU works on the previous batch costs
      nothing; on a CPU trace the fetch is the step's own time;
    - pageable copies (GPU traces): `Memcpy HtoD (Pageable -> Device)` time over the window;
      such copies are staged through a bounce buffer and block the host (pin_memory=True avoids it);
    - iowait (host.parquet, Linux): mean `sys_iowait_pct` over the run.
    Impact is the larger of the DataLoader and pageable-copy shares.
Thresholds: DATALOADER_LOW 5 % (the PyTorch Profiler TensorBoard plugin recommends a DataLoader fix
    when DataLoader time exceeds 5 % of the step), DATALOADER_MEDIUM 20 % (the seed documents:
    "data loading above 20 % of inference time"), DATALOADER_HIGH 40 % (twice that: the input
    pipeline dominates). PAGEABLE_LOW 2 %, PAGEABLE_MEDIUM 10 % of the window: copies are also
    GPU time, so a smaller share already matters. IOWAIT_MEDIUM 10 % mean iowait (sysstat's
    `%iowait`: sustained double digits mean the CPUs wait on storage).
Evidence: DataLoader share and ms, fetch count, the DataLoader class, pageable HtoD ms and bytes,
    iowait, and child.json's DataLoader settings (num_workers, pin_memory) when recorded.
False positives: the first fetch of a fresh iterator (worker start-up) inside a short window;
    iowait caused by other processes on the machine.
References: PyTorch Profiler TensorBoard plugin "Performance Recommendation"; PyTorch docs
    "DataLoader: memory pinning"; sysstat iostat(1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from dsprof.analyzers.trace_scope import (
    clamp01,
    ms,
    severity_for,
    share_evidence,
    worse_severity,
    worst_per_trace,
)
from dsprof.core.findings import Evidence, Finding
from dsprof.trace.device_kind import trace_role
from dsprof.trace.frames import DATALOADER_PREFIX

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData
    from dsprof.trace.frames import TraceFrames

DATALOADER_LOW = 0.05
DATALOADER_MEDIUM = 0.20
DATALOADER_HIGH = 0.40
PAGEABLE_LOW = 0.02
PAGEABLE_MEDIUM = 0.10
PAGEABLE_HIGH = 0.25
IOWAIT_MEDIUM = 10.0
IOWAIT_HIGH = 30.0


def _analyze_trace(tf: TraceFrames, extra: list[Evidence]) -> list[Finding]:
    window = tf.window_ns
    names = tf.annotations["name"].astype(str)
    dl = tf.in_window(tf.annotations[names.str.startswith(DATALOADER_PREFIX)])
    dl_ns = tf.window_busy_ns(dl)
    fetch_share = dl_ns / window
    # on a GPU, a fetch costs what the GPU idles during it (a prefetched batch costs nothing);
    # on the CPU the fetch is the step's own time
    idle = tf.idle if trace_role(tf) == "gpu" else None
    lost_ns = int(idle.by_cause["data loading"].sum()) if idle is not None else dl_ns
    dl_share = lost_ns / window
    pageable_ns, pageable_bytes = 0, 0
    if idle is not None:
        mc = tf.in_window(tf.memcpy)
        pg = mc[mc["pageable"] & (mc["direction"] == "HtoD")]
        pageable_ns = tf.window_busy_ns(pg)
        pageable_bytes = int(pg["bytes"].clip(lower=0).sum())
    pg_share = pageable_ns / window
    severity = worse_severity(
        severity_for(dl_share, DATALOADER_MEDIUM, DATALOADER_HIGH, DATALOADER_LOW),
        severity_for(pg_share, PAGEABLE_MEDIUM, PAGEABLE_HIGH, PAGEABLE_LOW),
    )
    if severity is None:
        return []
    w = tf.window_label
    evidence = [
        share_evidence("dataloader_share", fetch_share, DATALOADER_MEDIUM, tf),
        Evidence(metric="dataloader_ms", value=ms(dl_ns), unit="ms", window=w, source="trace"),
        Evidence(metric="dataloader_fetches", value=len(dl), unit="count", window=w),
    ]
    if idle is not None:
        evidence.append(
            share_evidence("dataloader_gpu_idle_share", dl_share, DATALOADER_MEDIUM, tf)
        )
    if len(dl):
        kind = str(dl["name"].iloc[0]).split("#", 1)[-1].split(".")[0]
        evidence.append(Evidence(metric="dataloader_iterator", value=kind, source="trace"))
    if pageable_ns:
        evidence += [
            share_evidence("pageable_h2d_share", pg_share, PAGEABLE_MEDIUM, tf),
            Evidence(metric="pageable_h2d_bytes", value=pageable_bytes, unit="bytes", window=w),
        ]
    evidence += extra
    if dl_share >= pg_share:
        title = f"DataLoader fetches take {fetch_share:.0%} of {w} ({dl_ns / 1e6:.1f} ms in {len(dl)} fetches)"
        if idle is not None:
            title += f"; the GPU idles {dl_share:.0%} of {w} waiting for them"
        # pinned memory only speeds up host-to-device copies: a CPU run has none
        recipes = ["dataloader", "pinned-memory"] if idle is not None else ["dataloader"]
    else:
        title = f"Pageable host-to-device copies take {pg_share:.0%} of {w}"
        recipes = ["pinned-memory", "dataloader"]
    return [
        Finding(
            category="io-stall",
            severity=severity,
            title=title,
            impact=clamp01(max(dl_share, pg_share)),
            evidence=evidence,
            recipes=recipes,
            analyzer=IoStallAnalyzer.name,
        )
    ]


def _iowait_evidence(run: RunData) -> tuple[list[Evidence], float | None]:
    host = run.host
    if host is None or "sys_iowait_pct" not in host or not host["sys_iowait_pct"].notna().any():
        return [], None
    mean = float(host["sys_iowait_pct"].mean())
    ev = Evidence(
        metric="iowait_mean_pct",
        value=round(mean, 2),
        unit="%",
        threshold=IOWAIT_MEDIUM,
        window="whole run",
        source="host.parquet",
    )
    return [ev], mean


def _dataloader_settings(run: RunData) -> list[Evidence]:
    out = []
    for d in run.child.dataloaders[:2]:
        where = f"{d.file}:{d.line}".strip(":")
        out.append(
            Evidence(metric="num_workers", value=d.num_workers, source=f"child.json {where}")
        )
        out.append(Evidence(metric="pin_memory", value=str(d.pin_memory), source="child.json"))
    return out


class IoStallAnalyzer:
    """See the module docstring."""

    name: ClassVar[str] = "io-stall"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ()

    def analyze(self, run: RunData) -> list[Finding]:
        """DataLoader and pageable-copy stalls from the traces; iowait from host samples."""
        iowait_ev, iowait = _iowait_evidence(run)
        extra = iowait_ev + _dataloader_settings(run)
        traces = run.traces if run.trace_files else []
        # a device dsprof does not analyse (MTIA) or a GPU without its timeline: not judged
        judged = [tf for tf in traces if trace_role(tf) in ("gpu", "cpu")]
        findings = worst_per_trace(judged, lambda tf: _analyze_trace(tf, extra))
        if not findings and iowait is not None:
            severity = severity_for(iowait, IOWAIT_MEDIUM, IOWAIT_HIGH)
            if severity is not None:
                findings.append(
                    Finding(
                        category="io-stall",
                        severity=severity,
                        title=f"CPUs wait on I/O {iowait:.0f}% of the run (iowait)",
                        impact=clamp01(iowait / 100),
                        evidence=extra,
                        recipes=["dataloader"],
                        analyzer=self.name,
                    )
                )
        return findings
