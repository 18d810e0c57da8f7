"""Collection and diagnosis are separate stages: the runner never imports the analyzers, writes
run.json once at the start and once at the end, and findings.json is written once, by the
analyzers, after the runner has finished the folder."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dsprof
import dsprof.store.documents as documents
from dsprof.store.layout import RunPaths

PACKAGE = Path(dsprof.__file__).parent


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("forbidden", ["dsprof.analyzers", "dsprof.report"])
def test_the_runner_never_imports_the_analyzers_or_the_report(forbidden: str) -> None:
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(m for m in _imports(p) if m.startswith(forbidden))
        for p in sorted((PACKAGE / "runner").glob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_a_profiled_block_writes_run_json_twice_and_findings_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    writes: list[str] = []
    real = documents.write_text_atomic

    def counting(path: Path, text: str) -> None:
        writes.append(path.name)
        real(path, text)

    monkeypatch.setattr(documents, "write_text_atomic", counting)
    model = torch.nn.Linear(8, 8)
    with dsprof.profile(out=tmp_path, trace=False, sample_hz=20) as run, torch.no_grad():
        for _ in range(4):
            model(torch.randn(2, 8))
    assert writes.count("run.json") == 2  # at the start (running) and at the end
    assert writes.count("findings.json") == 1
    assert run.path is not None and RunPaths(run.path).findings.is_file()
