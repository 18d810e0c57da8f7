"""The run folder's file names live in dsprof/store/layout.py and nowhere else in the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dsprof.store import layout
from dsprof.store.layout import RunPaths, output_step_name, output_steps

PACKAGE = Path(layout.__file__).parent.parent
# every name layout.py gives a file inside a run folder (folder names such as "trace" are words)
NAMES = {v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str) and "." in v}
# endings of names made from parts (trace/<host>_<pid>.pt.trace.json.gz, .<run id>.launch.log)
SUFFIXES = (layout.TRACE_FILE_SUFFIX, layout.LAUNCH_LOG_SUFFIX)


def _spelled(source: str, where: str) -> list[str]:
    """String literals in source that equal a run-folder file name or hold a name's ending (in an
    f-string too), as 'where:line name'.

    Evidence(source="host.parquet") names where a number was read, for a person: it is text in a
    finding, not a path, and is left out; so are docstrings.
    """
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    evidence_sources = {
        id(part)
        for node in ast.walk(tree)
        for kw in getattr(node, "keywords", []) or []
        if kw.arg == "source"
        for part in ast.walk(kw.value)
    }
    return [
        f"{where}:{node.lineno} {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and (node.value in NAMES or any(suffix in node.value for suffix in SUFFIXES))
        and id(node) not in evidence_sources
        and id(node) not in docstrings
    ]


def test_the_names_cover_the_documented_files() -> None:
    assert {"run.json", "findings.json", "child.json", "child-config.json", "cuda_memory.jsonl",
            "steps.jsonl", "fix.json", "report.html", "batching.json"} <= NAMES  # fmt: skip


def test_nothing_outside_store_spells_a_run_folder_file_name() -> None:
    found = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        if "store" not in path.relative_to(PACKAGE).parts
        for hit in _spelled(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))
    ]
    assert found == []


def test_the_check_sees_a_spelled_name() -> None:
    probe = (
        'PATH = "cuda_memory.jsonl"\n'
        'E = dict(source="host.parquet")\n'
        'F = dict(source="a" if PATH else "steps.parquet")\n'
        "def f(pid):\n"
        '    """Writes host_1.pt.trace.json.gz."""\n'
        '    return f"h_{pid}.pt.trace.json.gz"\n'
    )
    assert _spelled(probe, "probe.py") == [
        "probe.py:1 'cuda_memory.jsonl'",
        "probe.py:6 '.pt.trace.json.gz'",
    ]


@pytest.mark.parametrize("step", [0, 7, 1234], ids=["first", "seventh", "large"])
def test_output_step_files_round_trip(tmp_path: Path, step: int) -> None:
    paths = RunPaths(tmp_path)
    paths.make_dirs()
    paths.output_step(step).write_bytes(b"x")
    (paths.outputs_dir / "step-notanumber.pt").write_bytes(b"x")
    assert output_step_name(step).startswith("step-")
    assert output_steps(paths.outputs_dir) == {step: paths.output_step(step)}
