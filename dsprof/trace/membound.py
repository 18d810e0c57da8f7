"""Which GPU kernels are memory-bound: the roofline test per kernel, shared by the
memory-bandwidth-bound analyzer and the report's roofline figure.

Each kernel is attributed to the aten op that launched it (TraceFrames.kernel_ops); the op's FLOPs
and bytes come from its input shapes and dtypes (dsprof.trace.roofline). A costed kernel is
memory-bound when its op's arithmetic intensity (FLOPs / byte) lies left of the ridge point of the
trace's GPU (dsprof.trace.devices: peak FLOP/s for the op's dtype / peak bandwidth; the roofline
model, Williams, Waterman and Patterson, CACM 2009). A kernel whose op has no cost is classified
by its name (STREAMING_KERNEL_RE: elementwise, reductions, norms, copies, ...).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dsprof.trace.devices import GpuSpec, match_gpu
from dsprof.trace.frames import COMM_KERNEL_RE, match_names
from dsprof.trace.roofline import op_costs

if TYPE_CHECKING:
    from dsprof.trace.frames import TraceFrames

STREAMING_KERNEL_RE = re.compile(
    r"elementwise|reduce_kernel|reduction|copy|fill|norm|softmax|index|gather|scatter|embedding|"
    r"cat_|CatArray|transpose|where|dropout|rotary|quant|cast",
    re.IGNORECASE,
)


def device_spec(tf: TraceFrames) -> GpuSpec | None:
    """The peak-table row for the trace's busiest GPU."""
    name = tf.device_name()
    mem = next(
        (p.get("totalGlobalMem") for p in tf.device_properties if p.get("name") == name), None
    )
    return match_gpu(name, mem if isinstance(mem, int) else None)


def classify(tf: TraceFrames, spec: GpuSpec | None) -> pd.DataFrame:
    """Kernels in the window with columns membound (bool), flops, bytes, via ('roofline'|'name')."""
    k = tf.in_window(tf.kernel_ops)
    k = k[~match_names(k["name"], COMM_KERNEL_RE)]
    costs = op_costs(tf.cpu_ops, tf.decoded_shapes)
    idx = k["op_index"].to_numpy()
    has = idx >= 0
    flops = np.full(len(k), np.nan)
    nbytes = np.full(len(k), np.nan)
    dtype = np.full(len(k), "", dtype=object)
    if len(costs):
        flops[has] = costs["flops"].to_numpy()[idx[has]]
        nbytes[has] = costs["bytes"].to_numpy()[idx[has]]
        dtype[has] = costs["dtype"].to_numpy()[idx[has]]
    costed = ~np.isnan(flops)
    membound = np.zeros(len(k), dtype=bool)
    if spec is not None and costed.any():
        ridge = np.array([spec.ridge_flops_per_byte(d or "float") for d in dtype[costed]])
        membound[costed] = flops[costed] / nbytes[costed] < ridge
    by_name = match_names(k["name"], STREAMING_KERNEL_RE).to_numpy()
    membound[~costed] = by_name[~costed]
    via = np.where(costed & (spec is not None), "roofline", "name")
    return k.assign(membound=membound, flops=flops, bytes=nbytes, dtype=dtype, via=via)
