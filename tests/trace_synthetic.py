"""Small hand-made Kineto traces for exact analyzer tests: every number is chosen, so every
expected value is known. Times are in microseconds as Kineto writes them."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson

from dsprof.store.layout import RunPaths
from dsprof.store.run_store import RunData

PID, TID = 100, 100
A100 = {
    "id": 0,
    "name": "NVIDIA A100-SXM4-80GB",
    "totalGlobalMem": 85_000_000_000,
    "computeMajor": 8,
    "computeMinor": 0,
    "numSms": 108,
}


class TraceBuilder:
    """Collects events; `write()` produces a current-schema trace file."""

    def __init__(self, *, base_ns: int | None = None, gpu: bool = True) -> None:
        self.events: list[dict[str, Any]] = []
        self.base_ns = base_ns
        self.devices = [A100] if gpu else []
        self.meta: dict[str, Any] = {}
        self._corr = 1000

    def span(self, cat: str, name: str, ts: float, dur: float, tid: int = TID, **args: Any) -> None:
        """An 'X' event on the host."""
        self.events.append(
            {
                "ph": "X",
                "cat": cat,
                "name": name,
                "pid": PID,
                "tid": tid,
                "ts": ts,
                "dur": dur,
                "args": args,
            }
        )

    def step(self, n: int, ts: float, dur: float) -> None:
        """A ProfilerStep#n annotation."""
        self.span("user_annotation", f"ProfilerStep#{n}", ts, dur)

    def op(self, name: str, ts: float, dur: float, **args: Any) -> None:
        """An aten op (cat cpu_op)."""
        self.span("cpu_op", name, ts, dur, **args)

    def kernel(
        self,
        name: str,
        ts: float,
        dur: float,
        *,
        launch_ts: float | None = None,
        launch_dur: float = 5.0,
        stream: int = 7,
        cat: str = "kernel",
        launch: str = "cudaLaunchKernel",
        **args: Any,
    ) -> int:
        """A GPU event plus its launching runtime call (correlated); returns the correlation id."""
        self._corr += 1
        corr = self._corr
        if launch_ts is not None:
            self.span("cuda_runtime", launch, launch_ts, launch_dur, correlation=corr)
        self.events.append(
            {
                "ph": "X",
                "cat": cat,
                "name": name,
                "pid": 0,
                "tid": stream,
                "ts": ts,
                "dur": dur,
                "args": {"device": 0, "stream": stream, "correlation": corr, **args},
            }
        )
        return corr

    def runtime(self, name: str, ts: float, dur: float, correlation: int = -1) -> None:
        """A CUDA runtime call with no GPU work of its own (synchronize, ...)."""
        self.span("cuda_runtime", name, ts, dur, correlation=correlation)

    def memory(
        self, ts: float, nbytes: int, allocated: int, reserved: int, device_type: int = 1
    ) -> None:
        """A [memory] instant event."""
        self.events.append(
            {
                "ph": "i",
                "cat": "cpu_instant_event",
                "s": "t",
                "name": "[memory]",
                "pid": PID,
                "tid": TID,
                "ts": ts,
                "args": {
                    "Bytes": nbytes,
                    "Total Allocated": allocated,
                    "Total Reserved": reserved,
                    "Device Id": 0 if device_type == 1 else -1,
                    "Device Type": device_type,
                },
            }
        )

    def document(self) -> dict[str, Any]:
        """The whole trace as a dict (deviceProperties first, base time last, as Kineto writes)."""
        doc: dict[str, Any] = {"schemaVersion": 1, "deviceProperties": self.devices, **self.meta}
        doc["traceEvents"] = self.events
        if self.base_ns is not None:
            doc["baseTimeNanoseconds"] = self.base_ns
        return doc

    def write(self, path: Path) -> Path:
        """Write .json or .json.gz (by suffix)."""
        data = orjson.dumps(self.document(), option=orjson.OPT_INDENT_2)
        path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
        return path


def trace_run(*paths: Path) -> RunData:
    """A RunData over bare trace files, as `dsprof analyze TRACE...` builds it."""
    return RunData(paths=RunPaths(paths[0].parent), manifest=None, trace_files=list(paths))
