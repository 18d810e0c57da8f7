"""Are the findings the same? `dsprof analyze --json` of this tree against another source tree.

    git worktree add --detach /tmp/base <commit>      # the code before a refactor
    python bench/findings_diff.py --baseline /tmp/base
    python bench/findings_diff.py --baseline /tmp/base RUN_DIR...   # run folders too

Every shared trace is analysed alone, and each folder of several traces as one multi-rank job
(DSPROF_SHARED_TRACES, default /work/shared/traces); each RUN_DIR is copied twice so that
neither side's findings.json lands in the other's input. Each side runs as
`python -m dsprof analyze --json` with PYTHONPATH on its own tree. A finding is compared by its
category, severity, impact, confidence, title, recipes, detail and every evidence value, and the
document's notices by code. Prints one line per input (same, or each field that differs, before
-> after) and exits 1 when any input differs: a refactor that must not change a diagnosis
should print no differences. Made for issue 12 (one home for a run's facts).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DSPROF_SHARED_TRACES", "/work/shared/traces"))
TIMEOUT_S = 600


def inputs(run_dirs: list[Path]) -> list[tuple[str, list[Path]]]:
    """(label, paths) for each analysis: shared traces alone, multi-trace folders, run folders."""
    found: list[tuple[str, list[Path]]] = []
    traces = sorted(p for p in SHARED.rglob("*.json*") if p.is_file())
    by_folder: dict[Path, list[Path]] = {}
    for p in traces:
        by_folder.setdefault(p.parent, []).append(p)
    for folder, files in sorted(by_folder.items()):
        if len(files) > 1 and all(f.name.startswith("worker") for f in files):
            found.append((str(folder.relative_to(SHARED)) + "/*", files))  # one job's ranks
        else:
            found += [(str(f.relative_to(SHARED)), [f]) for f in files]
    return found + [(f"run {d.name}", [d]) for d in run_dirs]


def analyze(tree: Path, paths: list[Path], scratch: Path) -> dict[str, Any]:
    """The findings document one tree gives, or {"error": ...}."""
    if len(paths) == 1 and paths[0].is_dir():  # a run folder: analyse a copy
        copy = scratch / paths[0].name
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(paths[0], copy)
        paths = [copy]
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "dsprof", "analyze", "--json", *map(str, paths)],
        capture_output=True, text=True, env=env, cwd=scratch, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """What is compared: each finding by category, the notices by code."""
    if "error" in doc:
        return {"error": doc["error"]}
    out: dict[str, Any] = {}
    for f in doc.get("findings", []):
        out[f["category"]] = {
            **{k: f.get(k) for k in ("severity", "impact", "confidence", "title", "recipes")},
            "detail": f.get("detail", ""),
            **{f"evidence.{e['metric']}": e["value"] for e in f.get("evidence", [])},
        }
    out["notices"] = sorted(n.get("code", "") for n in doc.get("notices", []))
    return out


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """'category.field: before -> after' for every field that differs."""
    lines = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if x == y:
            continue
        if not isinstance(x, dict) or not isinstance(y, dict):
            lines.append(f"{key}: {_short(x)} -> {_short(y)}")
            continue
        for field in sorted(set(x) | set(y)):
            if x.get(field) != y.get(field):
                lines.append(f"{key}.{field}: {_short(x.get(field))} -> {_short(y.get(field))}")
    return lines


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 120 else text[:117] + "..."


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, required=True, help="another dsprof source tree")
    ap.add_argument("run_dirs", type=Path, nargs="*", help="run folders to analyse as well")
    args = ap.parse_args()
    if not (args.baseline / "dsprof" / "__init__.py").is_file():
        ap.error(f"{args.baseline}: no dsprof/__init__.py there (a dsprof source tree)")
    differ = 0
    with tempfile.TemporaryDirectory(prefix="findings-diff-") as tmp:
        base_dir, this_dir = Path(tmp, "baseline"), Path(tmp, "this")
        base_dir.mkdir()
        this_dir.mkdir()
        for label, paths in inputs(args.run_dirs):
            before = summary(analyze(args.baseline, paths, base_dir))
            after = summary(analyze(ROOT, paths, this_dir))
            found = differences(before, after)
            cats = ", ".join(f"{c} {v['severity']}" for c, v in after.items() if c != "notices"
                             and isinstance(v, dict)) or "no findings"  # fmt: skip
            print(f"{'DIFF' if found else 'same'}  {label}: {cats}")
            for line in found:
                print(f"        {line}")
            differ += bool(found)
    print(f"{differ} of {len(inputs(args.run_dirs))} inputs differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
