"""RunFacts: what several consumers need about a run, decided once (dsprof.store.facts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cpu_synthetic import linear, make_run, profiler_steps
from trace_cache import DATA
from trace_synthetic import TraceBuilder, trace_run

from dsprof.analyzers.cpu_threads import CpuThreadsAnalyzer
from dsprof.recipes.threads import ThreadsRecipe
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import RunData

# real traces: (file, kind, vendor)
REAL = [
    ("tracelens/gpu_only_trace.json.gz", "rocm", "AMD"),  # MI210: hip_runtime_version
    ("tracelens/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz", "cuda", "NVIDIA"),  # H100
    ("hta/event_sync_trace.json.gz", "cuda", "NVIDIA"),  # A100, no version keys
    ("kineto/resnet50_num_workers_4/worker0.1623212756351.pt.trace.json.gz", "cuda", "NVIDIA"),
]


@pytest.mark.parametrize(
    ("rel", "kind", "vendor"), REAL, ids=[r[1] + "-" + r[0].split("/")[0] for r in REAL]
)
def test_device_of_a_bare_trace(rel: str, kind: str, vendor: str) -> None:
    facts = trace_run(DATA / rel).facts
    assert (facts.device.kind, facts.device.vendor) == (kind, vendor)
    assert facts.uses_device and facts.uses_cuda and facts.uses_accelerator
    assert facts.device.names  # deviceProperties names the board
    assert facts.usable_cores is None  # a bare trace says nothing about the host's cores


def test_another_accelerators_events_make_an_accelerator_device(tmp_path: Path) -> None:
    b = TraceBuilder(gpu=False)
    b.step(1, 0, 1000)
    b.op("aten::linear", 10, 100)
    b.span("mtia_runtime", "mtiaLaunchKernel", 20, 5)  # as hta/mtia_rank_0 records them
    facts = trace_run(b.write(tmp_path / "mtia.json")).facts
    assert (facts.device.kind, facts.device.vendor) == ("accelerator", "Meta (MTIA)")
    # its work is not GPU work the GPU analyzers read, nor CPU work: the CPU analyzers stay silent
    assert facts.uses_accelerator and not facts.uses_device and not facts.uses_cuda


def test_a_cpu_trace_on_a_gpu_machine_knows_the_gpu_but_did_not_use_it(tmp_path: Path) -> None:
    b = TraceBuilder(gpu=True)  # deviceProperties list an A100; no kernel ran
    b.step(1, 0, 1000)
    b.op("aten::mm", 10, 100)
    facts = trace_run(b.write(tmp_path / "cpu.json")).facts
    assert facts.device.kind == "cuda" and facts.device.names == ("NVIDIA A100-SXM4-80GB",)
    assert not facts.uses_device and not facts.uses_cuda


@pytest.mark.parametrize(
    ("info", "gpus", "uses", "kind"),
    [
        ({"device_types": ["cpu"]}, 1, False, "cuda"),  # a CPU model on a GPU machine
        ({"device_types": ["cuda"]}, 1, True, "cuda"),
        ({"device_types": ["cuda"], "hip": "6.2"}, 0, True, "rocm"),
        ({"device_types": ["xpu"]}, 0, True, "accelerator"),
        ({}, 1, True, "cuda"),  # nothing says where it ran: a GPU in run.json counts as used
        ({}, 0, False, "cpu"),
    ],
    ids=["cpu-outputs", "cuda-outputs", "rocm", "xpu", "run-json-gpu", "nothing"],
)
def test_device_of_a_run_without_traces(tmp_path, info, gpus, uses, kind) -> None:
    facts = make_run(tmp_path, child_info=info or None, gpus=gpus).facts
    assert (facts.uses_device, facts.device.kind) == (uses, kind)


def test_trace_gpu_work_decides_over_child_outputs(tmp_path: Path) -> None:
    events = [*profiler_steps(1000, 1)]
    run = make_run(tmp_path, events=events, child_info={"device_types": ["cpu"]}, gpus=1)
    assert not run.facts.uses_device  # the trace holds no GPU work, the outputs are on the CPU


@pytest.mark.parametrize(
    ("info", "cores", "expected"),
    [
        ({"usable_cpus": 2.5}, 8, (2.5, "child.json usable_cpus")),  # cgroup quota of 2.5 cores
        (
            {"usable_cpus": 16},
            8,
            (8.0, "child.json usable_cpus, capped at run.json cpu_count_physical"),
        ),
        ({}, 8, (8.0, "run.json cpu_count_physical")),
    ],
    ids=["quota", "hyperthreads", "fallback"],
)
def test_usable_cores(tmp_path, info, cores, expected) -> None:
    facts = make_run(tmp_path, child_info=info, cpu_count=cores).facts
    assert (facts.usable_cores, facts.usable_cores_source) == expected
    assert facts.usable_cores_measured == bool(info)


def test_the_cpu_threads_analyzer_and_the_threads_recipe_agree_on_the_target(tmp_path) -> None:
    # 16 logical CPUs on 8 physical cores: both judge by the 8 cores RunFacts gives them
    info = {"torch_num_threads": 2, "usable_cpus": 16}
    events = [*profiler_steps(5000, 2), *linear(100, 3000, 64, 1024, 2048)]
    run = make_run(tmp_path, events=events, child_info=info, cpu_count=8)
    (finding,) = CpuThreadsAnalyzer().analyze(run)
    usable = next(e.value for e in finding.evidence if e.metric == "usable_cpus")
    assert usable == 8.0 and ThreadsRecipe().target(run) == 8


def test_dtypes_root_modules_and_main_module(tmp_path: Path) -> None:
    info = {
        "root_modules": [
            {"class": "BertModel", "param_dtypes": ["float32", "int8"]},
            {"class": "Head", "param_dtypes": ["float32"]},
        ]
    }
    import pandas as pd

    steps = pd.DataFrame(
        {"step": range(5), "duration_ns": [1] * 5, "module": ["BertModel"] * 4 + ["Head"]}
    )
    facts = make_run(tmp_path, child_info=info, steps=steps).facts
    assert facts.param_dtypes == ("float32", "int8")
    assert facts.root_modules == ("BertModel", "Head") and facts.main_module == "BertModel"


def test_facts_are_built_once(tmp_path: Path) -> None:
    run = RunData(paths=RunPaths(tmp_path), manifest=None)
    assert run.facts is run.facts
    assert run.facts.device.kind == "cpu" and run.facts.steps.count == 0
