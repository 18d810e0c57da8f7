"""Runtime and driver calls by what they do, CUDA and HIP alike.

Kineto records the CUDA runtime/driver (cudaLaunchKernel, cuLaunchKernel) and, on ROCm, the HIP
runtime (hipLaunchKernel, hipExtModuleLaunchKernel) under the same categories; analyzers ask
"is this a launch, an allocator call, a blocking sync?" here instead of listing names of one
vendor. Families (CALL_FAMILIES, first match wins):

    explicit-sync  the host waits for the whole device: cudaDeviceSynchronize, cuCtxSynchronize,
                   hipDeviceSynchronize, hipCtxSynchronize (torch.cuda.synchronize())
    implicit-sync  the host waits for a stream or an event: cuda/cu/hip StreamSynchronize,
                   EventSynchronize (.item(), .cpu(), .tolist())
    copy           copies a host thread issues (cudaMemcpy*, cuMemcpy*, hipMemcpy*, including
                   hipMemcpyWithStream, ROCm's blocking copy); blocking when the copy is
                   device-to-host or from pageable memory (TraceFrames.host_syncs)
    launch         enqueue device work: kernel launches (cudaLaunchKernel*, cuLaunchKernel*,
                   hipLaunchKernel, hip(Ext)ModuleLaunchKernel, cooperative launches), graph
                   launches (cudaGraphLaunch, hipGraphLaunch) and async memsets
    allocator      device and pinned-host memory from the driver: cudaMalloc/cudaFree (and
                   Async, Host, Managed, Pitch variants), cuMemAlloc/cuMemFree, the virtual
                   memory calls behind expandable segments (cuMemCreate, cuMemMap, ...),
                   hipMalloc/hipFree, hipHostMalloc/hipHostFree, hipExtMallocWithFlags
    init           set-up that creates something once: driver and context creation, module and
                   library loading, stream creation. (The first call of any other name that
                   takes far longer than its later calls is one-time work too: see
                   dsprof.analyzers.host_time.first_calls.)

A call is looked up once per distinct name (calls are Categoricals), so a trace with millions of
launches costs one regex per name.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pandas as pd

_API = r"(?:cuda|cu|hip)"
CALL_FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("explicit-sync", re.compile(rf"^{_API}(?:Device|Ctx)Synchronize$")),
    ("implicit-sync", re.compile(rf"^{_API}(?:Stream|Event)Synchronize$")),
    ("copy", re.compile(rf"^{_API}Memcpy")),
    (
        "launch",
        re.compile(
            rf"^{_API}(?:Ext)?(?:Module)?Launch(?:Cooperative)?Kernel|^{_API}GraphLaunch|"
            rf"^{_API}(?:Ext)?LaunchKernel|^{_API}Memset|^{_API}LaunchHostFunc"
        ),
    ),
    (
        "allocator",
        re.compile(
            rf"^{_API}(?:Malloc|Free|HostAlloc|HostMalloc|HostFree|MallocHost|FreeHost|"
            rf"MemAlloc|MemFree|MemCreate|MemRelease|MemMap|MemUnmap|MemAddressReserve|"
            rf"MemAddressFree|MemSetAccess|ExtMallocWithFlags|MemPool|HostRegister|"
            rf"HostUnregister)"
        ),
    ),
    (
        "init",
        re.compile(
            rf"^{_API}(?:Init$|DevicePrimaryCtxRetain|CtxCreate|ModuleLoad|LibraryLoad|"
            rf"StreamCreate)"
        ),
    ),
)
SYNC_FAMILIES = ("explicit-sync", "implicit-sync")
# the values of a family column ("" for a call of none of them)
FAMILIES = ("", *(family for family, _ in CALL_FAMILIES))


@functools.lru_cache(maxsize=4096)
def call_family(name: str) -> str:
    """The family of one runtime/driver call name ('' when it is none of them)."""
    for family, pattern in CALL_FAMILIES:
        if pattern.search(name):
            return family
    return ""


def call_families(names: pd.Series) -> pd.Series:
    """call_family for each row of a (categorical) name column, evaluated once per name; a
    categorical column over FAMILIES (comparing it compares small integer codes)."""
    if not isinstance(names.dtype, pd.CategoricalDtype):
        names = names.astype("category")
    cats = names.cat.categories
    codes = names.cat.codes.to_numpy()
    # the name interner is shared by every table: look up only the names present here; the last
    # slot is for rows without a name (code -1)
    table = np.zeros(len(cats) + 1, dtype=np.int8)
    for code in np.unique(codes[codes >= 0]).tolist():
        table[code] = FAMILIES.index(call_family(str(cats[code])))
    family = pd.Categorical.from_codes(table[codes], categories=list(FAMILIES))
    return pd.Series(family, index=names.index)
