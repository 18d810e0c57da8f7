"""TraceFrames: one parsed Kineto trace as typed DataFrames, with the views analyzers use."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from dsprof.core.errors import TraceError
from dsprof.core.facts import Device
from dsprof.core.findings import Notice
from dsprof.trace.calls import call_families
from dsprof.trace.columns import to_frames
from dsprof.trace.idle import GapCauses, blocking_calls, device_idle, unrecorded_waits
from dsprof.trace.intervals import busy_ns, innermost_containing
from dsprof.trace.parse import ParsedColumns, parse_columns
from dsprof.trace.phases import InitPhase, init_phase, trace_bounds
from dsprof.trace.reader import CHUNK_BYTES

_STEP_RE = re.compile(r"^ProfilerStep#(\d+)$")
DATALOADER_PREFIX = "enumerate(DataLoader)"  # also in dsprof.trace.idle
# collectives: NCCL kernels, and non-NCCL ones (PyTorch symmetric memory, custom all-reduce, gloo)
COMM_KERNEL_RE = re.compile(
    r"nccl|all_?reduce|allgather|all_gather|reduce_?scatter|all_?to_?all|multimem|cross_device_reduce|"
    r"sendrecv|broadcast",
    re.IGNORECASE,
)
# copies that return only when done whatever their direction (ROCm's blocking copy)
SYNCHRONOUS_COPY_CALLS = frozenset({"hipMemcpyWithStream"})
COMM_CPU_RE = re.compile(
    r"^(nccl:|rccl:|hccl:|gloo:|c10d::|record_param_comms)|ProcessGroup", re.IGNORECASE
)


@dataclass
class TraceFrames:
    """A parsed trace. See the package docstring (dsprof.trace) for the columns and views."""

    path: Path
    cpu: pd.DataFrame
    runtime: pd.DataFrame
    gpu: pd.DataFrame
    memory: pd.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)
    uncompressed_bytes: int = 0
    # what the reader must know about this trace (events dropped, window cut, schema version):
    # merged into FindingsDocument.notices by the registry (dsprof.analyzers.analyze_run)
    notices: list[Notice] = field(default_factory=list)
    # events of categories no frame holds, by category (another accelerator's runtime, ...)
    unread_categories: dict[str, int] = field(default_factory=dict)

    # ---- metadata -------------------------------------------------------------------------
    @property
    def base_ns(self) -> int:
        """baseTimeNanoseconds (0 for traces whose ts are already epoch microseconds)."""
        return int(self.metadata.get("baseTimeNanoseconds") or 0)

    @property
    def device_properties(self) -> list[dict[str, Any]]:
        """The trace's deviceProperties list (GPU name, numSms, computeMajor, ...)."""
        props = self.metadata.get("deviceProperties") or []
        return [p for p in props if isinstance(p, dict)]

    @property
    def distributed(self) -> dict[str, Any]:
        """distributedInfo (backend, rank, world_size, ...) or {}."""
        info = self.metadata.get("distributedInfo")
        return info if isinstance(info, dict) else {}

    @property
    def rank(self) -> int | None:
        """This trace's rank from distributedInfo, when recorded."""
        r = self.distributed.get("rank")
        return int(r) if isinstance(r, int) else None

    @property
    def has_gpu_activity(self) -> bool:
        """True when the trace holds GPU kernels, copies or sets (not just deviceProperties)."""
        return len(self.gpu_busy_events) > 0

    @cached_property
    def device(self) -> Device:
        """The accelerator the trace shows: CUDA or ROCm/HIP GPU, another accelerator (MTIA,
        XPU...), or the CPU (dsprof.trace.device_kind.trace_device)."""
        from dsprof.trace.device_kind import trace_device

        return trace_device(self)

    def device_name(self, device: int | None = None) -> str | None:
        """The name of the GPU the kernels ran on (the most used device when not given).

        When every listed device has one name, that name (kernels may carry a device id that the
        runtime remapped, e.g. under HIP_VISIBLE_DEVICES, which matches no listed id).
        """
        names = {str(p["name"]) for p in self.device_properties if p.get("name")}
        if len(names) == 1:
            return names.pop()
        if device is None and len(self.kernels):
            device = int(self.kernels["device"].mode().iloc[0])
        for p in self.device_properties:
            if device is None or p.get("id") == device:
                return str(p.get("name")) if p.get("name") else None
        return None

    # ---- views ----------------------------------------------------------------------------
    @cached_property
    def cpu_ops(self) -> pd.DataFrame:
        """aten:: and other operator events (cat cpu_op / legacy Operator)."""
        return self.cpu[self.cpu["cat"] == "cpu_op"].reset_index(drop=True)

    @cached_property
    def annotations(self) -> pd.DataFrame:
        """record_function spans (cat user_annotation), plus legacy Operator-cat step/DataLoader spans."""
        # names decided once per distinct name, not per event (a cpu table has 10^5 rows)
        named = map_names(
            self.cpu["name"], lambda n: n.startswith(("ProfilerStep#", DATALOADER_PREFIX))
        ).to_numpy(dtype=bool)
        cat = self.cpu["cat"]
        legacy = (cat == "cpu_op").to_numpy() & named
        return self.cpu[(cat == "user_annotation").to_numpy() | legacy].reset_index(drop=True)

    @cached_property
    def kernels(self) -> pd.DataFrame:
        """GPU kernels."""
        return self.gpu[self.gpu["cat"] == "kernel"].reset_index(drop=True)

    @cached_property
    def gpu_busy_events(self) -> pd.DataFrame:
        """Kernels, memcpys and memsets: what occupies a GPU (cuda_sync events excluded)."""
        return self.gpu[self.gpu["cat"].isin(["kernel", "gpu_memcpy", "gpu_memset"])].reset_index(
            drop=True
        )

    @cached_property
    def memcpy(self) -> pd.DataFrame:
        """GPU copies; `direction` (HtoD, DtoH, DtoD, ...) and `pageable` columns added."""
        df = self.gpu[self.gpu["cat"] == "gpu_memcpy"].reset_index(drop=True)
        return df.assign(
            direction=map_names(df["name"], _copy_direction).astype(str),
            pageable=map_names(df["name"], lambda n: "Pageable" in n).astype(bool),
        )

    @cached_property
    def comm_kernels(self) -> pd.DataFrame:
        """Collective kernels, NCCL or not (symmetric-memory all-reduce, custom all-reduce, ...)."""
        k = self.kernels
        return k[match_names(k["name"], COMM_KERNEL_RE)].reset_index(drop=True)

    @cached_property
    def comm_cpu(self) -> pd.DataFrame:
        """Host-side collective spans (nccl:*, gloo:*, c10d::*): the CPU-only view of communication."""
        return self.cpu[match_names(self.cpu["name"], COMM_CPU_RE)].reset_index(drop=True)

    @cached_property
    def launches(self) -> pd.DataFrame:
        """Kernels joined to the runtime call that launched them (by correlation id).

        Columns: the kernel's columns plus launch_ts_ns, launch_dur_ns, launch_name, launch_tid;
        kernels without a matching runtime event keep NaN launch columns.
        """
        rt = self.runtime[self.runtime["correlation"] >= 0][
            ["correlation", "ts_ns", "dur_ns", "name", "tid"]
        ]
        rt = rt.drop_duplicates("correlation").rename(
            columns={
                "ts_ns": "launch_ts_ns",
                "dur_ns": "launch_dur_ns",
                "name": "launch_name",
                "tid": "launch_tid",
            }
        )
        return self.kernels.merge(rt, on="correlation", how="left")

    @cached_property
    def kernel_ops(self) -> pd.DataFrame:
        """launches plus `op_index` (row in cpu_ops of the innermost operator around the launch
        call, -1 when none) and `op_name`. Matched by time on the launching thread, which works
        for every schema (External id conventions differ between torch versions)."""
        k = self.launches
        ops = self.cpu_ops
        has = k["launch_ts_ns"].notna()
        idx = np.full(len(k), -1, dtype=np.int64)
        idx[has.to_numpy()] = innermost_containing(
            ops["tid"].to_numpy(),
            ops["ts_ns"].to_numpy(),
            ops["end_ns"].to_numpy(),
            k.loc[has, "launch_tid"].to_numpy(dtype=np.int64),
            k.loc[has, "launch_ts_ns"].to_numpy(dtype=np.int64),
        )
        # kernels whose launch call was not recorded (launched before the trace began): fall back
        # to the kernel's own External id, which current torch versions set to the op's id
        ext = k["external_id"].to_numpy()
        missing = (idx < 0) & (ext >= 0)
        if missing.any() and len(ops):
            by_ext = pd.Series(np.arange(len(ops)), index=ops["external_id"].to_numpy())
            by_ext = by_ext[~by_ext.index.duplicated()]
            idx[missing] = by_ext.reindex(ext[missing]).fillna(-1).to_numpy(dtype=np.int64)
        # the names of the ops found, decoded once per distinct name
        names = np.asarray([str(c) for c in ops["name"].cat.categories] + [""], dtype=object)
        codes = ops["name"].cat.codes.to_numpy()
        op_name = np.where(idx >= 0, names[codes[np.maximum(idx, 0)]] if len(codes) else "", "")
        # object dtype: pandas would otherwise copy every name into an Arrow string column
        return k.assign(op_index=idx, op_name=pd.Series(op_name, index=k.index, dtype=object))

    @cached_property
    def runtime_names(self) -> list[str]:
        """The distinct runtime/driver call names in the trace."""
        codes = np.unique(self.runtime["name"].cat.codes.to_numpy())
        cats = self.runtime["name"].cat.categories
        return [str(cats[c]) for c in codes.tolist() if c >= 0]

    @cached_property
    def runtime_calls(self) -> pd.DataFrame:
        """runtime plus `family`: what each call does (dsprof.trace.calls: "launch",
        "allocator", "explicit-sync", "implicit-sync", "copy", "init", or "")."""
        return self.runtime.assign(family=call_families(self.runtime["name"]))

    @cached_property
    def host_syncs(self) -> pd.DataFrame:
        """Runtime calls during which the host waits for the GPU, with a `kind` column:

        "explicit" (cuda/hip DeviceSynchronize: torch.cuda.synchronize()), "implicit"
        (stream/event syncs: .item(), .cpu(), .tolist()), "copy" (cudaMemcpy*, hipMemcpy*
        of a device-to-host or pageable copy, matched by correlation id: it returns only when
        the copy is done; hipMemcpyWithStream, ROCm's synchronous copy, whatever its
        direction).
        """
        rt = self.runtime_calls
        mc = self.memcpy
        blocking = mc[(mc["direction"] == "DtoH") | mc["pageable"]]["correlation"]
        family = rt["family"]
        explicit = family == "explicit-sync"
        implicit = family == "implicit-sync"
        copies = family == "copy"
        synchronous = copies & rt["name"].isin(SYNCHRONOUS_COPY_CALLS)
        copy = copies & (rt["correlation"].isin(blocking) | synchronous)
        out = rt[explicit | implicit | copy].drop(columns="family")
        kind = np.select(
            [explicit[out.index], implicit[out.index]], ["explicit", "implicit"], default="copy"
        )
        return out.assign(kind=kind).reset_index(drop=True)

    @cached_property
    def steps(self) -> pd.DataFrame:
        """ProfilerStep#N windows: step, start_ns, end_ns, dur_ns (empty when none were recorded)."""
        a = self.annotations
        number = map_names(a["name"], _step_number).to_numpy(dtype=np.int64)
        s = a[number >= 0]
        out = pd.DataFrame(
            {
                "step": number[number >= 0],
                "start_ns": s["ts_ns"].to_numpy(),
                "end_ns": s["end_ns"].to_numpy(),
            }
        )
        out = out.sort_values("start_ns", ignore_index=True).drop_duplicates("step")
        out["dur_ns"] = out["end_ns"] - out["start_ns"]
        return out.reset_index(drop=True)

    @cached_property
    def blocking_calls(self) -> pd.DataFrame:
        """host_syncs plus item()-like ops (name, ts_ns, end_ns): every host wait on the device."""
        return blocking_calls(self)

    @cached_property
    def unrecorded_waits(self) -> pd.DataFrame:
        """Blocking calls that wait while no recorded device work runs (dsprof.trace.idle)."""
        return unrecorded_waits(self)

    @cached_property
    def idle(self) -> GapCauses | None:
        """The busiest device's idle gaps in the window, with the host time under them split by
        cause (dsprof.trace.idle); None without GPU work."""
        return device_idle(self)

    @cached_property
    def init(self) -> InitPhase:
        """One-time initialisation in the trace (dsprof.trace.phases), cut from the window of a
        trace without ProfilerStep spans when it is worth cutting."""
        return init_phase(self, has_steps=len(self.steps) > 0)

    @cached_property
    def window(self) -> tuple[int, int]:
        """The analysis window (start_ns, end_ns): the ProfilerStep span; else the steady state
        after one-time initialisation (self.init); else the whole trace."""
        if len(self.steps):
            return int(self.steps["start_ns"].min()), int(self.steps["end_ns"].max())
        lo, hi = trace_bounds(self)
        cut = self.init.cut_ns
        return (cut if cut is not None else lo), hi

    @property
    def window_ns(self) -> int:
        """Length of the analysis window."""
        lo, hi = self.window
        return max(hi - lo, 1)

    @property
    def window_label(self) -> str:
        """How the window was chosen, for Evidence.window."""
        if len(self.steps):
            s = self.steps["step"]
            return (
                f"ProfilerStep#{s.min()}-#{s.max()}" if len(s) > 1 else f"ProfilerStep#{s.iloc[0]}"
            )
        return "the steady state" if self.init.cut_ns is not None else "whole trace"

    def window_busy_ns(self, events: pd.DataFrame) -> int:
        """Time inside the analysis window covered by at least one of the events (their union)."""
        lo, hi = self.window
        return busy_ns(events["ts_ns"].to_numpy(), events["end_ns"].to_numpy(), lo, hi)

    def in_window(self, df: pd.DataFrame) -> pd.DataFrame:
        """Rows of df that overlap the analysis window."""
        lo, hi = self.window
        return df[(df["end_ns"] > lo) & (df["ts_ns"] < hi)]

    def decoded_shapes(self, column: pd.Series) -> pd.Series:
        """Input Dims / Input type / Concrete Inputs decoded from JSON, once per unique value."""
        cats = column.cat.categories
        decoded = np.empty(len(cats) + 1, dtype=object)  # last slot: NaN codes (-1)
        decoded[: len(cats)] = [orjson.loads(c) if c else None for c in cats]
        return pd.Series(decoded[column.cat.codes.to_numpy()], index=column.index, dtype=object)


def _step_number(name: str) -> int:
    m = _STEP_RE.match(name)
    return int(m.group(1)) if m else -1


_COPY_DIRECTION = re.compile(r"Memcpy (\w+)")


def _copy_direction(name: str) -> str:
    m = _COPY_DIRECTION.search(name)
    return m.group(1) if m else ""


_ANON = re.compile(r"\(anonymous namespace\)::")


@functools.lru_cache(maxsize=8192)
def short_kernel_name(name: str) -> str:
    """'void (anonymous namespace)::multimem_all_reduce_kernel<...>(...)' -> 'multimem_all_reduce_kernel'."""
    text = _ANON.sub("", name)
    text = re.sub(r"^(void|std::enable_if<.*?>::type)\s+", "", text)
    head = re.split(r"[<(]", text, maxsplit=1)[0].strip()
    return head.rsplit("::", 1)[-1] or name[:60]


def match_names(names: pd.Series, pattern: re.Pattern[str]) -> pd.Series:
    """Boolean mask: regex evaluated once per unique (categorical) name."""
    names = _categorical(names)
    cats = names.cat.categories
    codes = names.cat.codes.to_numpy()
    present = np.flatnonzero(np.bincount(codes + 1, minlength=len(cats) + 1)[1:])
    hits = np.zeros(len(cats) + 1, dtype=bool)  # the last slot: no name (code -1)
    hits[present] = [bool(pattern.search(str(cats[c]))) for c in present.tolist()]
    return pd.Series(hits[codes], index=names.index)


def map_names(names: pd.Series, fn: Callable[[str], Any]) -> pd.Series:
    """fn(name) for each row, evaluated once per unique (categorical) name."""
    names = _categorical(names)
    cats = names.cat.categories
    codes = names.cat.codes.to_numpy()
    # the interner is shared by every table: evaluate only the names this column holds
    present = np.flatnonzero(np.bincount(codes + 1, minlength=len(cats) + 1)[1:])
    values = np.empty(len(cats) + 1, dtype=object)
    values[-1] = fn("")
    values[present] = [fn(str(cats[c])) for c in present.tolist()]
    # object dtype: inferring pandas' string dtype would copy every row into Arrow
    return pd.Series(values[codes], index=names.index, dtype=object)


def _categorical(names: pd.Series) -> pd.Series:
    return names if isinstance(names.dtype, pd.CategoricalDtype) else names.astype("category")


def load_trace(
    path: str | Path, *, chunk_bytes: int = CHUNK_BYTES, keep_python_functions: bool = False
) -> TraceFrames:
    """Parse a Kineto trace (.json or .json.gz, 2021 or current schema) into TraceFrames.

    python_function events (with_stack) are skipped unless keep_python_functions is True: no
    analyzer reads them and they are often half of the trace.
    Raises TraceError naming the file for a truncated gzip, invalid JSON, a file without
    traceEvents, or a trace with no CPU/GPU events.
    """
    parsed = parse_columns(
        path, chunk_bytes=chunk_bytes, keep_python_functions=keep_python_functions
    )
    return frames_from_columns(parsed)


def frames_from_columns(parsed: ParsedColumns) -> TraceFrames:
    """TraceFrames over columns from dsprof.trace.parse (parsed here or in a worker process)."""
    meta = parsed.metadata
    base = meta.get("baseTimeNanoseconds")
    frames = to_frames(parsed.tables, parsed.strings, int(base) if isinstance(base, int) else 0)
    if not any(len(df) for df in frames.values()):
        what = "no events" if parsed.events_total == 0 else "no CPU or GPU events"
        raise TraceError(f"the trace has {what} in traceEvents", path=parsed.path)
    return TraceFrames(
        path=parsed.path,
        metadata=meta,
        uncompressed_bytes=parsed.uncompressed_bytes,
        notices=[Notice(code=c, message=m) for c, m in parsed.notices],
        unread_categories=dict(parsed.unread_categories),
        **frames,
    )
