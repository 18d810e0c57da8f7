"""Each finding's action sentence and its evidence in human units."""

from __future__ import annotations

from pathlib import Path

import pytest
from planted_runs import PLANTED_DIR, planted_run

from dsprof.core.findings import Evidence
from dsprof.core.manifest import RunManifest
from dsprof.report.actions import display_path, display_paths, fix_command
from dsprof.report.build import build_report
from dsprof.report.evidence import human_evidence, metric_label


@pytest.mark.parametrize(
    ("evidence", "label", "value", "threshold"),
    [
        (Evidence(metric="dataloader_share", value=0.593, unit="fraction", threshold=0.2),
         "DataLoader share", "59%", "20%"),
        (Evidence(metric="fp32_gemm_time", value=1840.0, unit="ms"), "Fp32 GEMM time", "1.84 s", ""),
        (Evidence(metric="dataloader_ms", value=2527.6, unit="ms"), "DataLoader time", "2.53 s", ""),
        (Evidence(metric="pageable_h2d_bytes", value=3 * 2**30, unit="bytes"),
         "Pageable H2D", "3 GiB", ""),
        (Evidence(metric="item_calls", value=12288, unit="count"), "Item calls", "12,288", ""),
        (Evidence(metric="train_mode_op_time", value=0.25, unit="of steps"),
         "Train mode op time", "25% of steps", ""),
        (Evidence(metric="gpu_idle_share", value=0.42, threshold=0.2), "GPU idle share", "42%",
         "20%"),
        (Evidence(metric="num_workers", value=0, source="child.json"), "Num workers", "0", ""),
    ],
    ids=["share", "ms-to-s", "time-key", "bytes", "count", "of-steps", "share-no-unit", "plain"],
)  # fmt: skip
def test_evidence_in_human_units(
    evidence: Evidence, label: str, value: str, threshold: str
) -> None:
    h = human_evidence(evidence)
    assert (h.label, h.value, h.threshold, h.metric) == (label, value, threshold, evidence.metric)


def test_metric_label_keeps_acronyms() -> None:
    assert metric_label("idle_sm_ms") == "Idle SM time"
    assert metric_label("cpu_utilisation") == "CPU utilisation"


def test_fix_command_keeps_the_scripts_own_arguments() -> None:
    m = RunManifest(run_id="x", argv=["ex/cnn.py", "--batches", "16", "a b"], target="ex/cnn.py",
                    cwd="/w", start_ns=0)  # fmt: skip
    assert fix_command(m) == "dsprof fix ex/cnn.py --batches 16 'a b'"
    assert fix_command(m.model_copy(update={"kind": "module"})).startswith("dsprof fix -m ")
    assert fix_command(m.model_copy(update={"world_size": 2})) == ""  # a job: not trialled
    assert fix_command(m.model_copy(update={"kind": "watch"})) == ""


def test_pages_name_the_script_and_sources_from_the_repository_root() -> None:
    root = Path(__file__).resolve().parents[1]  # this checkout: a git repository
    m = RunManifest(run_id="x", argv=["cnn_dataloader.py", "--batches", "16"],
                    target="cnn_dataloader.py", cwd=str(root / "examples"), start_ns=0)  # fmt: skip
    assert fix_command(m) == "dsprof fix cnn_dataloader.py --batches 16"  # runs from the cwd
    paged = fix_command(m, repo_relative=True)  # a page or pull request: from the repository
    assert paged == "dsprof fix examples/cnn_dataloader.py --batches 16"
    source = f"child.json {root / 'examples' / 'cnn_dataloader.py'}:90"
    assert display_paths(source) == "child.json examples/cnn_dataloader.py:90"
    assert display_paths("trace: a/b.json, http://x/y") == "trace: a/b.json, http://x/y"


def test_display_path_is_repository_relative() -> None:
    here = Path(__file__).resolve()
    assert display_path(str(here)) == "tests/test_report_actions.py"
    assert display_path("/nowhere/x.py", "/nowhere") == "x.py"
    assert display_path("rel/x.py") == "rel/x.py"


def test_a_real_io_stall_run_names_the_dataloader_line_and_the_change() -> None:
    run = planted_run("io_stall")
    view = build_report(run).view
    top = view.findings[0]
    assert top.category == "io-stall"
    line = next(
        i + 1
        for i, text in enumerate((PLANTED_DIR / "io_stall.py").read_text().splitlines())
        if "DataLoader(" in text
    )
    assert top.where == f"tests/planted/io_stall.py:{line}"
    assert top.action.startswith(
        f"DataLoader at tests/planted/io_stall.py:{line} runs with num_workers=0"
    )
    assert "try num_workers=" in top.action and "prefetch_factor=4" in top.action
    script = PLANTED_DIR / "io_stall.py"
    assert run.manifest is not None and run.manifest.argv == [str(script)]
    # typed absolute; a page shows it from the repository root, wherever the run started
    assert top.action_command == "dsprof fix tests/planted/io_stall.py"
    assert all(not e.source.startswith("/") and " /" not in e.source for e in top.evidence)
