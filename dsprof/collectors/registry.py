"""The sampled collectors, in the order they start: an explicit tuple.

Adding one: write dsprof/collectors/<name>.py with a class that follows
dsprof.collectors.base.SampledCollector (usually a PeriodicCollector subclass), add it below, and
name its table in dsprof/store/layout.py (see docs/collectors.md).
"""

from __future__ import annotations

from dsprof.collectors.base import SampledCollector
from dsprof.collectors.host import HostCollector
from dsprof.collectors.nvml import NvmlCollector

SAMPLED: tuple[type[SampledCollector], ...] = (
    HostCollector,
    NvmlCollector,
)
