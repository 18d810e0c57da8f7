"""What each shared trace is known to show (tests/data/traces/README.md), end to end through the
registry, plus the registry's own behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest
from trace_cache import DATA, findings
from trace_synthetic import TraceBuilder, trace_run

import dsprof.analyzers as registry
from dsprof.analyzers import ANALYZERS, SECOND_PASS, analyze_run, analyze_traces
from dsprof.core.errors import TraceError, UsageError
from dsprof.core.findings import Finding
from dsprof.core.manifest import Environment, RunManifest

GPU_CATEGORIES = {
    "gpu-idle",
    "memory-bandwidth-bound",
    "no-tensor-cores",
    "idle-sm",
    "memory-fragmentation",
}
RECIPE_IDS = {
    "int8-dynamic", "weight-only-int8", "bf16", "fp16", "tf32", "compile", "cuda-graphs", "fused-kernels",
    "sdpa", "dataloader", "pinned-memory", "alloc-conf", "threads", "inference-mode", "eval-mode", "batching",
}  # fmt: skip


def _at_least_medium(rel: str) -> set[str]:
    return {f.category for f in findings(rel).findings if f.severity in ("medium", "high")}


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("kineto/resnet50_num_workers_0", {"io-stall"}),
        ("param/resnet_kineto.json.gz", {"io-stall", "gpu-idle"}),
        ("hta/rank0.json.gz", {"gpu-idle", "launch-overhead", "host-sync"}),
        (
            "tracelens/google_owlv2-large-patch14-ensemble__1016001.json.gz",
            {"gpu-idle", "host-sync"},
        ),
        ("hta/test.json.gz", {"host-sync"}),
        ("param/dlrm_kineto", {"straggler"}),
    ],
    ids=["resnet-workers0", "resnet-param", "hta-rank0", "owlv2", "hta-test", "dlrm-8-ranks"],
)
def test_known_bottlenecks(rel: str, expected: set[str]) -> None:
    assert expected <= _at_least_medium(rel)


def test_fixed_dataloader_has_no_io_stall_above_low() -> None:
    assert "io-stall" not in _at_least_medium("kineto/resnet50_num_workers_4")


def test_healthy_qwen_has_no_high_finding() -> None:
    assert [
        f.category
        for f in findings("tracelens/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz").findings
        if f.severity == "high"
    ] == []


@pytest.mark.parametrize(
    "rel",
    ["hta/rank0.json.gz", "hta/test.json.gz", "param/dlrm_kineto", "tracelens/eager_trace.json.gz",
     "tracelens/google_owlv2-large-patch14-ensemble__1016001.json.gz"],
)  # fmt: skip
def test_documents_are_well_formed(rel: str) -> None:
    doc = findings(rel)
    assert doc.analyzers_failed == {}
    impacts = [f.impact for f in doc.findings]
    assert impacts == sorted(impacts, reverse=True)
    for f in doc.findings:
        assert set(f.recipes) <= RECIPE_IDS, f.recipes
        assert f.evidence and f.title and 0 <= f.impact <= 1


def test_registry_names_are_unique_and_kebab() -> None:
    names = [a.name for a in (*ANALYZERS, *SECOND_PASS)]
    assert len(names) == len(set(names))
    assert all(n == n.lower() and " " not in n for n in names)


def test_no_gpu_category_on_cpu_trace(tmp_path: Path) -> None:
    tb = TraceBuilder(gpu=False)
    tb.devices = [{"id": 0, "name": "NVIDIA A100-SXM4-80GB", "computeMajor": 8}]  # listed, unused
    tb.step(1, 0, 1000)
    for i in range(300):
        tb.op("aten::mul", 10 + 3 * i, 2)
    doc = analyze_traces([tb.write(tmp_path / "cpu.json")])
    assert not {f.category for f in doc.findings} & GPU_CATEGORIES


def test_gpu_work_in_the_trace_decides_over_a_manifest_without_gpus(tmp_path: Path) -> None:
    # NVML sees no AMD GPU and a ROCm torch has no torch.version.cuda: run.json lists no GPU on a
    # ROCm machine, so the trace's own GPU work decides (RunFacts.uses_device), for every analyzer
    run = trace_run(DATA / "hta/rank0.json.gz")
    run.manifest = RunManifest(
        run_id="x", argv=[], target="x", cwd="/", start_ns=0,
        environment=Environment(python="3", platform="linux", hostname="h", cpu_model="c", cpu_count_logical=2),
    )  # fmt: skip
    assert run.facts.uses_device
    with_manifest = {(f.category, f.severity) for f in analyze_run(run).findings}
    bare = {(f.category, f.severity) for f in analyze_traces([DATA / "hta/rank0.json.gz"]).findings}
    assert with_manifest == bare and {c for c, _ in bare} & GPU_CATEGORIES


def test_failing_analyzer_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        name = "broken"
        version = 1
        requires = ()

        def analyze(self, run: object) -> list[Finding]:
            raise ValueError("boom")

    monkeypatch.setattr(registry, "ANALYZERS", (*ANALYZERS, Broken()))
    doc = registry.analyze_traces([DATA / "hta/event_sync_trace.json.gz"])
    assert doc.analyzers_failed == {"broken": "ValueError: boom"}
    assert doc.findings  # the others still ran


def test_bad_trace_and_missing_paths(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(TraceError, match=r"bad\.json"):
        analyze_traces([bad])
    with pytest.raises(UsageError, match="no such trace"):
        analyze_traces([tmp_path / "missing.json"])
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(UsageError, match=r"no \.json"):
        analyze_traces([empty])


def test_unreadable_trace_in_a_run_is_reported_once(tmp_path: Path) -> None:
    bad = tmp_path / "host_1.pt.trace.json"
    bad.write_text('{"traceEvents": [')
    doc = analyze_run(trace_run(bad))
    assert list(doc.analyzers_failed) == ["trace"]
    assert "truncated" in doc.analyzers_failed["trace"]
