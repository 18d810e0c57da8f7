"""Notices the diagnosis owes its reader: what was not judged, and how the window was chosen.

Silence must not read as health. Each trace can add:

    unsupported-device   the device work ran on an accelerator dsprof does not analyse (an MTIA
                         trace): GPU analyzers find no GPU work and CPU analyzers do not run,
                         so nothing about the device is judged
    no-device-activity   a GPU is listed (deviceProperties) or called (runtime calls) but no
                         kernel, copy or set was recorded (CUPTI range profiling, activities
                         without CUDA): with runtime calls nothing is judged; with a listed
                         device only, the trace is analysed as the CPU run it is
    no-steps             no ProfilerStep#N spans: the window is the whole trace, or the steady
                         state after one-time initialisation
    init-excluded        one-time initialisation was cut from the window: how long, what it was
    unrecorded-device-work  the host waited in syncs for UNRECORDED_NOTICE or more of the window
                         while no recorded device work ran: the device ran work the trace does
                         not hold (launched before the profiler started, by another thread or
                         process), so that time was not judged
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsprof.core.findings import Notice
from dsprof.trace.device_kind import (
    accelerator_categories,
    gpu_calls,
    nccl_collectives,
    trace_role,
)

if TYPE_CHECKING:
    from dsprof.trace.frames import TraceFrames

# notices after which a trace was not judged at all
NOT_JUDGED = ("unsupported-device", "no-device-activity", "unrecorded-device-work")
# share of the window spent waiting on unrecorded device work that earns a notice
UNRECORDED_NOTICE = 0.10


def trace_notices(tf: TraceFrames) -> list[Notice]:
    """The notices one parsed trace calls for (see the module docstring)."""
    name = tf.path.name
    device = tf.device
    role = trace_role(tf)
    out: list[Notice] = []
    if role == "accelerator":
        cats = accelerator_categories(tf)
        events = sum(tf.unread_categories[c] for c in cats)
        out.append(
            Notice(
                code="unsupported-device",
                message=(
                    f"{name}: the device work ran on {device.label} ({events} events in "
                    f"{', '.join(cats)}), which dsprof does not analyse: no GPU or CPU finding "
                    "is made for it (the host only fed the device)."
                ),
            )
        )
        return out
    if role == "gpu-unrecorded":
        calls, nccl = gpu_calls(tf), nccl_collectives(tf)
        gpu = device.label if device.kind != "cpu" else "GPU"
        seen = (
            f"{calls} {gpu} runtime calls (launches, copies, syncs)"
            if calls
            else f"{nccl} NCCL collectives on the host (NCCL runs on GPUs)"
        )
        out.append(
            Notice(
                code="no-device-activity",
                message=(
                    f"{name}: {seen} but no kernel, copy or set event on the device (recorded "
                    "without the device activities, or under the CUPTI range profiler): the "
                    "device was not judged, and the host is not blamed for work that ran on it."
                ),
            )
        )
        return out
    if role == "cpu" and device.names:
        out.append(
            Notice(
                code="no-device-activity",
                message=(
                    f"{name}: deviceProperties lists {', '.join(sorted(set(device.names)))} but "
                    "the trace holds no kernel, copy or runtime call on it: analysed as a CPU run."
                ),
            )
        )
    if role == "gpu":
        waits = tf.unrecorded_waits
        waited = tf.window_busy_ns(waits)
        if waited >= UNRECORDED_NOTICE * tf.window_ns:
            out.append(
                Notice(
                    code="unrecorded-device-work",
                    message=(
                        f"{name}: the host waited {waited / 1e6:.1f} ms "
                        f"({waited / tf.window_ns:.0%} of {tf.window_label}) in "
                        f"{len(waits)} sync(s) while no recorded device work ran: the device ran "
                        "work this trace does not hold (launched before the profiler started, "
                        "or by another thread or process), so that time was not judged."
                    ),
                )
            )
    if not len(tf.steps):
        init = tf.init
        lo, hi = tf.window
        if init.cut_ns is not None:
            where = f"the steady state after initialisation ({(hi - lo) / 1e6:.1f} ms)"
        else:
            where = f"the whole trace ({(hi - lo) / 1e6:.1f} ms)"
        out.append(
            Notice(
                code="no-steps",
                message=f"{name}: no ProfilerStep#N spans; the findings judge {where}.",
            )
        )
        if init.cut_ns is not None:
            total = init.trace_end_ns - init.trace_start_ns
            out.append(
                Notice(
                    code="init-excluded",
                    message=(
                        f"{name}: the first {init.prefix_ns / 1e6:.1f} ms of "
                        f"{total / 1e6:.1f} ms ({init.prefix_ns / max(total, 1):.1%}) are "
                        f"mostly one-time initialisation, paid once per process "
                        f"({init.total_ns / 1e6:.1f} ms of context/module set-up and first "
                        f"calls: {init.describe()}); cut from the analysis window."
                    ),
                )
            )
    return out
