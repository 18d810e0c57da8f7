"""The sampled-collector contract, its registry, and the one context manager that owns them."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest

import dsprof
from dsprof.collectors import registry
from dsprof.collectors.base import PeriodicCollector
from dsprof.collectors.host import HostCollector
from dsprof.collectors.nvml import NvmlCollector
from dsprof.collectors.sampling import Sampling
from dsprof.store.layout import RunPaths


def _sampler_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("dsprof-")]


def test_sampling_starts_the_available_collectors_and_stops_them() -> None:
    with Sampling(os.getpid(), 50, [HostCollector, NvmlCollector]) as sampling:
        assert "dsprof-host" in _sampler_threads()
        time.sleep(0.3)
    assert "dsprof-host" not in _sampler_threads()
    by_name = {s.name: s for s in sampling.samples}
    host = by_name["host"]
    assert host.status.ok and host.rows and host.status.detail["samples"] == len(host.rows)
    assert host.table == "host" and "proc_rss_bytes" in host.rows[0]
    ok, reason = NvmlCollector.available()
    assert by_name["nvml"].status.ok is ok
    if not ok:  # no GPU here: a note with the reason, no rows, no error
        assert by_name["nvml"].status.reason == reason and by_name["nvml"].rows == []


def test_collectors_are_stopped_when_the_block_raises() -> None:
    with pytest.raises(KeyboardInterrupt), Sampling(os.getpid(), 50, [HostCollector]) as sampling:
        time.sleep(0.1)
        raise KeyboardInterrupt
    assert "dsprof-host" not in _sampler_threads()
    assert [s.name for s in sampling.samples] == ["host"]


class _Refuses(PeriodicCollector):
    name: ClassVar[str] = "refuses"
    table: ClassVar[str] = "host"
    start_error: ClassVar[str] = "the probe refused"

    def __init__(self, pid: int, hz: float) -> None:
        raise PermissionError("no access")

    @staticmethod
    def available() -> tuple[bool, str]:
        return True, ""

    @staticmethod
    def describe() -> str:
        return "nothing"


def test_a_collector_that_fails_to_start_is_a_status_not_an_error() -> None:
    with Sampling(os.getpid(), 50, [_Refuses, HostCollector]) as sampling:
        time.sleep(0.05)
    refused = next(s for s in sampling.samples if s.name == "refuses")
    assert not refused.status.ok and refused.status.reason.startswith("the probe refused: ")
    assert "no access" in refused.status.reason


class LoadAvgCollector(PeriodicCollector):
    """A new collector written as docs/collectors.md says: its own module and a registry line."""

    name: ClassVar[str] = "loadavg"
    table: ClassVar[str] = "loadavg"
    int_columns: ClassVar[tuple[str, ...]] = ("ts_ns",)

    def __init__(self, pid: int, hz: float) -> None:
        super().__init__(hz)

    @staticmethod
    def available() -> tuple[bool, str]:
        return (True, "") if hasattr(os, "getloadavg") else (False, "no os.getloadavg here")

    @staticmethod
    def describe() -> str:
        return "1-minute load average"

    def sample(self) -> list[dict[str, Any]]:
        return [{"ts_ns": time.time_ns(), "load_1m": os.getloadavg()[0]}]


def test_a_new_collector_needs_its_module_and_a_registry_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    if not LoadAvgCollector.available()[0]:
        pytest.skip("no os.getloadavg")
    monkeypatch.setattr(registry, "SAMPLED", (*registry.SAMPLED, LoadAvgCollector))
    # the one line store/layout.py would get for a new table
    table = property(lambda self: self.metrics_dir / "loadavg.parquet")
    monkeypatch.setattr(RunPaths, "loadavg", table, raising=False)
    model = torch.nn.Linear(4, 4)
    with dsprof.profile(out=tmp_path, trace=False, sample_hz=50) as run, torch.no_grad():
        for _ in range(3):
            model(torch.randn(1, 4))
            time.sleep(0.1)
    assert run.path is not None
    rows = pd.read_parquet(run.path / "metrics" / "loadavg.parquet")
    assert len(rows) and rows["ts_ns"].dtype == "int64"
    status = json.loads((run.path / "run.json").read_text())["collectors"]["loadavg"]
    assert status["ok"] and status["detail"]["samples"] == len(rows)
    # and `dsprof env` lists it
    from dsprof.collectors.availability import check_all

    assert any(a.name == "loadavg" and a.detail == "1-minute load average" for a in check_all())
