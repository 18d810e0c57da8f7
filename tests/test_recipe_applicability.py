"""Whether each recipe applies, and why not, from the facts a run folder holds (child.json)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsprof.core.child import ChildInfo
from dsprof.core.findings import Finding, FindingsDocument
from dsprof.recipes.registry import BY_NAME, RECIPES, get_recipe
from dsprof.recipes.session import candidates
from dsprof.store.documents import write_model
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import RunData

GPU_ONLY = (
    "fp16",
    "tf32",
    "cuda-graphs",
    "weight-only-int8",
    "alloc-conf",
    "pinned-memory",
    "fused-kernels",
)

CPU_BERT = {
    "cuda_available": False,
    "device_types": ["cpu"],
    "torch_num_threads": 2,
    "usable_cpus": 2,
    "autograd_enabled_steps": 0,
    "steps_seen": 10,
    "training_modules": [],
    "root_modules": [{"class": "BertModel", "qualname": "BertModel", "param_dtypes": ["float32"]}],
    "dataloaders": [],
}


def _run(tmp_path: Path, findings: list[str] = (), **info) -> RunData:
    paths = RunPaths(tmp_path)
    if findings:
        doc = FindingsDocument(
            findings=[Finding(category=c, severity="high", title=c, impact=0.5) for c in findings]
        )
        write_model(paths.findings, doc)
    return RunData(
        paths=paths, manifest=None, child_info=ChildInfo.model_validate({**CPU_BERT, **info})
    )


def test_registry_has_the_issue_ids_and_docstring_sections():
    wanted = {
        "int8-dynamic",
        "weight-only-int8",
        "bf16",
        "fp16",
        "tf32",
        "compile",
        "cuda-graphs",
        "fused-kernels",
        "sdpa",
        "dataloader",
        "pinned-memory",
        "alloc-conf",
        "threads",
        "inference-mode",
        "eval-mode",
        "batching",
    }
    assert wanted <= set(BY_NAME)
    import importlib

    for cls in RECIPES:
        doc = importlib.import_module(cls.__module__).__doc__ or ""
        for section in ("Addresses:", "Change:", "Risks:", "Verification:"):
            assert section in doc, f"{cls.name}: {section} missing"
        assert cls.risk in ("exact", "approximate", "deterministic")


@pytest.mark.parametrize("name", GPU_ONLY)
def test_gpu_recipes_say_why_not_on_a_cpu_run(tmp_path, name):
    applies, why = get_recipe(name).applicable(_run(tmp_path))
    assert not applies
    assert "GPU" in why or "CUDA" in why


@pytest.mark.parametrize(
    ("name", "info", "applies", "why"),
    [
        ("inference-mode", {"autograd_enabled_steps": 10}, True, "10 of 10 steps"),
        ("inference-mode", {}, False, "without autograd"),
        ("eval-mode", {"training_modules": ["BertModel.dropout"]}, True, "training mode"),
        ("eval-mode", {}, False, "no module"),
        ("threads", {"torch_num_threads": 1}, True, "1 intra-op threads for 2"),
        ("threads", {}, False, "already 2"),
        (
            "dataloader",
            {"dataloaders": [{"num_workers": 0, "file": "s.py", "line": 3}]},
            True,
            "s.py:3",
        ),
        ("dataloader", {"dataloaders": [{"num_workers": 4}]}, False, "already use worker"),
        ("dataloader", {}, False, "no torch DataLoader"),
        ("int8-dynamic", {}, True, "float32"),
        (
            "int8-dynamic",
            {"root_modules": [{"class": "M", "param_dtypes": ["bfloat16"]}]},
            False,
            "no float32",
        ),
        ("int8-dynamic", {"device_types": ["cuda"], "cuda_available": True}, False, "CPU only"),
        ("bf16", {"root_modules": []}, False, "no nn.Module"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_applicability_from_child_facts(tmp_path, name, info, applies, why):
    got, reason = get_recipe(name).applicable(_run(tmp_path, **info))
    assert got is applies
    assert why in reason


def test_candidates_follow_the_findings(tmp_path):
    run = _run(tmp_path, findings=["cpu-fp32-linear"], autograd_enabled_steps=10)
    by = {c.recipe: c for c in candidates(run, [])}
    assert by["int8-dynamic"].applies and by["int8-dynamic"].findings == ["cpu-fp32-linear"]
    assert by["bf16"].applies and by["compile"].applies
    # applicable in itself, but no finding calls for it
    assert not by["inference-mode"].applies and "no finding" in by["inference-mode"].reason
    assert not by["fp16"].applies


def test_forced_recipes_are_flagged_and_unknown_ones_refused(tmp_path):
    from dsprof.core.errors import UsageError

    run = _run(tmp_path)
    by = {c.recipe: c for c in candidates(run, ["threads"])}
    assert by["threads"].forced
    with pytest.raises(UsageError, match="unknown recipe 'turbo'"):
        candidates(run, ["turbo"])


def test_threads_target_leaves_the_cores_other_processes_keep_busy(tmp_path):
    import pandas as pd

    from dsprof.core.manifest import Environment, RunManifest
    from dsprof.recipes.threads import busy_cores_of_others

    env = Environment(
        python="3.11", platform="linux", hostname="h", cpu_model="c", cpu_count_logical=2
    )
    manifest = RunManifest(run_id="r", argv=[], target="s.py", cwd="/", start_ns=0, environment=env)
    run = _run(tmp_path)
    run.manifest = manifest
    # the machine 95 % busy (1.9 cores) of which this process used 0.9 core: others used 1.0
    run.host = pd.DataFrame({"sys_cpu_pct": [95.0] * 5, "proc_cpu_pct": [90.0] * 5})
    assert busy_cores_of_others(run) == pytest.approx(1.0)
    recipe = get_recipe("threads")
    assert recipe.target(run) == 1 and recipe.options(run) == {"num_threads": 1}
    applies, why = recipe.applicable(run)
    assert applies and "other processes kept 1.0 cores busy" in why
    run.host = pd.DataFrame({"sys_cpu_pct": [46.0] * 5, "proc_cpu_pct": [90.0] * 5})  # idle box
    assert recipe.target(run) == 2 and not recipe.applicable(run)[0]


# a CPU run on a machine whose torch sees a GPU: the run's work decides, not the machine
CPU_RUN_ON_GPU_BOX = {"cuda_available": True, "device_types": ["cpu"]}
GPU_RUN = {"cuda_available": True, "device_types": ["cuda"]}


def test_gpu_recipes_judge_the_runs_work_not_the_machines_gpu(tmp_path, monkeypatch):
    import dsprof.recipes.compile as compile_recipe

    cpu = _run(tmp_path / "cpu", **CPU_RUN_ON_GPU_BOX)
    gpu = _run(tmp_path / "gpu", **GPU_RUN)
    assert not cpu.facts.uses_cuda and gpu.facts.uses_cuda
    applies, why = get_recipe("cuda-graphs").applicable(cpu)
    assert not applies and "this run used none" in why and "outputs on cpu" in why
    assert get_recipe("cuda-graphs").applicable(gpu)[0]
    # Inductor on the CPU needs a C++ compiler, whatever GPU the machine has
    monkeypatch.setattr(compile_recipe, "cpp_compiler", lambda: None)
    applies, why = get_recipe("compile").applicable(cpu)
    assert not applies and "C++ compiler" in why
    assert get_recipe("compile").applicable(gpu)[0]
    # pinned memory only where the baseline's work ran on the GPU, in the trial and in --apply
    loader = get_recipe("dataloader")
    assert loader.options(cpu) == {"pin_memory": False}
    assert loader.options(gpu) == {"pin_memory": True}
    assert "pin_memory" not in loader.codemod(cpu).dataloader_kwargs
    assert loader.codemod(gpu).dataloader_kwargs["pin_memory"] == "True"
