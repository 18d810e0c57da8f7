"""GPU metrics with NVML (nvidia-ml-py's `pynvml`), read-only, in the parent process.

Never calls nvmlDeviceSet*: dsprof reads the device, it does not change it. A field NVML refuses
on a GPU is left out of the row (absent, never 0).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, ClassVar

from dsprof.collectors.base import SourceCollector


def available() -> tuple[bool, str]:
    """(ok, reason): the NVML library loads and sees at least one GPU."""
    try:
        import pynvml
    except ImportError:
        return False, "nvidia-ml-py (pynvml) is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        return False, f"NVML could not initialise: {e} (no NVIDIA driver or GPU on this machine)"
    try:
        n = pynvml.nvmlDeviceGetCount()
    finally:
        pynvml.nvmlShutdown()
    if n == 0:
        return False, "NVML sees no GPU"
    return True, ""


def _try(fn: Any, *args: Any) -> Any:
    import pynvml

    try:
        return fn(*args)
    except pynvml.NVMLError:
        return None


def device_info() -> tuple[str | None, list[dict[str, Any]]]:
    """(driver version, [{index, name, memory_total_bytes, uuid}]) or (None, []) without NVML."""
    ok, _ = available()
    if not ok:
        return None, []
    import pynvml

    pynvml.nvmlInit()
    try:
        driver = _try(pynvml.nvmlSystemGetDriverVersion)
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = _try(pynvml.nvmlDeviceGetMemoryInfo, h)
            gpus.append(
                {
                    "index": i,
                    "name": _try(pynvml.nvmlDeviceGetName, h) or f"GPU {i}",
                    "memory_total_bytes": int(mem.total) if mem else None,
                    "uuid": _try(pynvml.nvmlDeviceGetUUID, h),
                }
            )
        return (str(driver) if driver is not None else None), gpus
    finally:
        pynvml.nvmlShutdown()


class NvmlSampler:
    """Samples every GPU NVML sees; open between start() and close()."""

    # PCIe throughput takes ~20 ms per query (NVML samples over a window): read it every Nth sample
    PCIE_EVERY = 5

    def __init__(self) -> None:
        import pynvml

        self.nvml = pynvml
        pynvml.nvmlInit()
        self.handles = [
            pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
        ]
        self._n = 0
        self._reasons_fn = getattr(
            pynvml,
            "nvmlDeviceGetCurrentClocksEventReasons",
            getattr(pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None),
        )

    def sample(self) -> list[dict[str, Any]]:
        nv = self.nvml
        rows = []
        now = time.time_ns()
        pcie = self._n % self.PCIE_EVERY == 0
        self._n += 1
        for i, h in enumerate(self.handles):
            row: dict[str, Any] = {"ts_ns": now, "gpu_index": i}
            util = _try(nv.nvmlDeviceGetUtilizationRates, h)
            if util is not None:
                row["util_gpu_pct"] = float(util.gpu)
                row["util_mem_pct"] = float(util.memory)
            mem = _try(nv.nvmlDeviceGetMemoryInfo, h)
            if mem is not None:
                row["mem_used_bytes"] = int(mem.used)
                row["mem_total_bytes"] = int(mem.total)
            power = _try(nv.nvmlDeviceGetPowerUsage, h)
            if power is not None:
                row["power_w"] = power / 1000.0
            clock = _try(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM)
            if clock is not None:
                row["sm_clock_mhz"] = float(clock)
            if pcie:
                tx = _try(nv.nvmlDeviceGetPcieThroughput, h, nv.NVML_PCIE_UTIL_TX_BYTES)
                rx = _try(nv.nvmlDeviceGetPcieThroughput, h, nv.NVML_PCIE_UTIL_RX_BYTES)
                if tx is not None:
                    row["pcie_tx_bytes_per_s"] = float(tx) * 1024.0  # NVML reports KB/s
                if rx is not None:
                    row["pcie_rx_bytes_per_s"] = float(rx) * 1024.0
            if self._reasons_fn is not None:
                reasons = _try(self._reasons_fn, h)
                if reasons is not None:
                    row["throttle_reasons"] = int(reasons)
            rows.append(row)
        return rows

    def close(self) -> None:
        with contextlib.suppress(self.nvml.NVMLError):
            self.nvml.nvmlShutdown()


class NvmlCollector(SourceCollector):
    """The sampled collector of gpu.parquet (see dsprof.collectors.base); read-only NVML."""

    name: ClassVar[str] = "nvml"
    table: ClassVar[str] = "gpu"
    int_columns: ClassVar[tuple[str, ...]] = ("ts_ns", "gpu_index")
    start_error: ClassVar[str] = "NVML failed to open"

    def __init__(self, pid: int, hz: float) -> None:
        super().__init__(NvmlSampler(), hz)  # every GPU NVML sees, whatever the process uses

    @staticmethod
    def available() -> tuple[bool, str]:
        return available()

    @staticmethod
    def describe() -> str:
        driver, gpus = device_info()
        return f"driver {driver}; " + ", ".join(g["name"] for g in gpus)
