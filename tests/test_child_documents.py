"""child-config.json and child.json: typed, versioned, read and written through dsprof.store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsprof.core.child import ChildConfig, ChildInfo
from dsprof.core.errors import RunFolderError, SchemaVersionError
from dsprof.runner.launch import RunRequest, child_env
from dsprof.store.documents import read_child_config, read_child_info, write_model
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import load_run_paths

READERS = {"child-config": read_child_config, "child": read_child_info}


def test_the_parent_writes_a_config_the_child_reads(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    paths.make_dirs()
    req = RunRequest(target="s.py", args=["--n", "3"], recipes=["threads"], max_steps=7)
    req.recipe_options = {"threads": {"num_threads": 2, "out": tmp_path / "x.json"}}
    env = child_env(req, paths, run_dir=str(tmp_path))
    assert Path(env["DSPROF_CHILD_CONFIG"]) == paths.child_config.resolve()
    config = read_child_config(paths.child_config)
    assert config == ChildConfig(
        target="s.py",
        args=["--n", "3"],
        run_dir=str(tmp_path),
        recipes=["threads"],
        recipe_options={"threads": {"num_threads": 2, "out": str(tmp_path / "x.json")}},
        max_steps=7,
    )
    assert json.loads(paths.child_config.read_text())["schema_version"] == 1


@pytest.mark.parametrize("kind", list(READERS), ids=list(READERS))
def test_an_unknown_schema_version_is_refused_naming_the_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(SchemaVersionError, match=r"schema_version 99") as e:
        READERS[kind](path)
    assert e.value.path == path and str(path) in str(e.value)


@pytest.mark.parametrize("kind", list(READERS), ids=list(READERS))
def test_a_document_from_before_versioning_reads_as_version_1(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps({"target": "s.py"} if kind == "child-config" else {"steps_seen": 4}))
    assert READERS[kind](path).schema_version == 1


def test_a_config_key_the_child_does_not_know_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "child-config.json"
    path.write_text(json.dumps({"schema_version": 1, "target": "s.py", "trase": False}))
    with pytest.raises(RunFolderError, match="trase"):
        read_child_config(path)


def test_child_json_round_trips_with_its_documented_keys(tmp_path: Path) -> None:
    doc = {
        "status": "ok",
        "steps_seen": 3,
        "root_modules": [
            {
                "class": "Net",
                "qualname": "Net",
                "param_dtypes": ["float32"],
                "inputs": [{"name": "args.0", "shape": [4, 8], "dtype": "float32"}],
                "call_site": {"file": "s.py", "line": 7, "function": "<module>"},
            }
        ],
        "dataloaders": [{"num_workers": 0, "pin_memory": False, "file": "s.py", "line": 3}],
        "recipes": {"threads": {"status": "installed", "num_threads": {"before": 1, "after": 2}}},
        "a_field_from_a_newer_child": 1,
    }
    info = ChildInfo.model_validate(doc)
    assert info.root_modules[0].class_name == "Net" and info.root_modules[0].inputs[0].shape == [
        4,
        8,
    ]
    paths = RunPaths(tmp_path)
    write_model(paths.child_info, info)
    written = json.loads(paths.child_info.read_text())
    assert written["root_modules"][0]["class"] == "Net"  # the documented key, not class_name
    assert written["a_field_from_a_newer_child"] == 1
    assert read_child_info(paths.child_info) == info


def test_a_run_folder_with_an_unknown_child_version_is_a_clear_error(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    paths.child_info.write_text(json.dumps({"schema_version": 2}))
    with pytest.raises(SchemaVersionError) as e:
        load_run_paths(paths, None)
    assert e.value.path == paths.child_info


def test_a_run_folder_without_child_json_has_default_child_facts(tmp_path: Path) -> None:
    run = load_run_paths(RunPaths(tmp_path), None)
    assert run.child_info is None
    assert run.child.dataloaders == [] and run.child.training_modules is None


def test_the_child_refuses_a_config_of_another_version(tmp_path: Path) -> None:
    config = tmp_path / "child-config.json"
    config.write_text(json.dumps({"schema_version": 7, "target": "s.py"}))
    proc = subprocess.run(
        [sys.executable, "-m", "dsprof.runner.child"],
        env={**os.environ, "DSPROF_CHILD_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert str(config) in proc.stderr and "schema_version 7" in proc.stderr


def test_child_json_model_is_the_busiest_roots_own_entry(tmp_path: Path) -> None:
    import torch

    import dsprof

    big, small = torch.nn.Linear(64, 64), torch.nn.Linear(2, 2)
    with torch.no_grad(), dsprof.profile(out=tmp_path, trace=False, sample_hz=1) as session:
        for _ in range(4):
            big(torch.randn(256, 64))
            small(torch.randn(1, 2))
    info = json.loads((RunPaths(session.path).child_info).read_text())
    model, roots = info["model"], {r["index"]: r for r in info["root_modules"]}
    assert len(roots) == 2
    entry = roots[model["index"]]
    assert entry["class"] == "Linear" and entry["calls"] == 4
    shared = ("index", "class", "qualname", "calls", "failed_calls", "threads", "call_site")
    assert {k: model[k] for k in shared} == {k: entry[k] for k in shared}
    assert model["time_share"] == pytest.approx(
        entry["total_ns"] / sum(r["total_ns"] for r in roots.values())
    )
    assert info["call_site"] == model["call_site"]
