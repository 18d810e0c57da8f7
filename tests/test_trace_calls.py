"""Runtime calls by what they do, CUDA and HIP alike (dsprof.trace.calls)."""

from __future__ import annotations

import pandas as pd
import pytest

from dsprof.trace.calls import call_families, call_family


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("cudaDeviceSynchronize", "explicit-sync"),
        ("hipDeviceSynchronize", "explicit-sync"),
        ("cuCtxSynchronize", "explicit-sync"),
        ("cudaStreamSynchronize", "implicit-sync"),
        ("hipStreamSynchronize", "implicit-sync"),
        ("hipEventSynchronize", "implicit-sync"),
        ("cudaMemcpyAsync", "copy"),
        ("hipMemcpyWithStream", "copy"),
        ("hipMemcpyDtoHAsync", "copy"),
        ("cuMemcpyDtoHAsync_v2", "copy"),
        ("cudaLaunchKernel", "launch"),
        ("cudaLaunchKernelExC", "launch"),
        ("cuLaunchKernel", "launch"),
        ("hipLaunchKernel", "launch"),
        ("hipExtModuleLaunchKernel", "launch"),
        ("hipModuleLaunchKernel", "launch"),
        ("cudaGraphLaunch", "launch"),
        ("hipGraphLaunch", "launch"),
        ("hipMemsetAsync", "launch"),
        ("cudaMalloc", "allocator"),
        ("cudaFree", "allocator"),
        ("cudaFreeAsync", "allocator"),
        ("cudaHostAlloc", "allocator"),
        ("cuMemCreate", "allocator"),
        ("hipMalloc", "allocator"),
        ("hipFree", "allocator"),
        ("hipHostMalloc", "allocator"),
        ("hipExtMallocWithFlags", "allocator"),
        ("cuInit", "init"),
        ("cuDevicePrimaryCtxRetain", "init"),
        ("cuModuleLoadData", "init"),
        ("cudaStreamCreateWithFlags", "init"),
        ("hipStreamCreate", "init"),
        ("cudaEventQuery", ""),
        ("hipGetDevicePropertiesR0600", ""),
        ("aten::mm", ""),
    ],
)
def test_call_family(name: str, family: str) -> None:
    assert call_family(name) == family


def test_families_of_a_column_are_decided_per_name() -> None:
    names = pd.Series(["hipFree", "hipLaunchKernel", "hipFree", None], dtype="category")
    families = call_families(names)
    assert families.tolist() == ["allocator", "launch", "allocator", ""]
    # categorical: comparing a column of a million calls compares integer codes, not strings
    assert isinstance(families.dtype, pd.CategoricalDtype)
    assert (families == "allocator").tolist() == [True, False, True, False]
