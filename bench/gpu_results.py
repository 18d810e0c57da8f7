"""What a GPU check leaves: each step's key facts, the summary files, and the bundle.

facts(step, outdir, run_folder) reads the few numbers worth a glance from what the step wrote
(the JSON dsprof printed, a bench's output); write_summary writes summary.json and summary.md.

The device tool brings back at most 8 files of at most 16 MiB each, 64 MiB together, no deeper than
two folders. `bundle(outdir, dest, budget_bytes)` writes into dest: summary.json and summary.md
(copied, readable without unpacking) and gpu-check.tar.gz, split into gpu-check.tar.gz.partNN
pieces of PART_BYTES when larger (`cat gpu-check.tar.gz.part* | tar xz` joins them). When the
files add up to more than the budget, the least needed are left out first: captured model
outputs (outputs/), then traces, each tier largest first; what was left out is listed in
bundle.txt inside the archive and in the returned line.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

SUMMARY_VERSION = 1
PART_BYTES = 15 * 2**20
MAX_PARTS = 5  # with summary.json, summary.md and the console log: the tool's 8 files
ARCHIVE = "gpu-check.tar.gz"


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def facts(step: str, outdir: Path, run_folder: Path | None) -> dict[str, Any]:
    """The few numbers worth reading in the summary; never fails the step."""
    try:
        return _facts(step, outdir, run_folder)
    except Exception as e:  # a summary detail must not hide the step's real outcome
        return {"facts_error": f"{type(e).__name__}: {e}"}


def _facts(step: str, outdir: Path, run_folder: Path | None) -> dict[str, Any]:
    doc = _load_json(outdir / "results" / f"{step}.json")
    if step == "versions" and isinstance(doc, dict):
        return doc
    if step.startswith("run-") and run_folder is not None:
        return {"run_folder": str(run_folder.relative_to(outdir))}
    if step.startswith("analyze-") and isinstance(doc, dict):
        found = doc.get("findings") or []
        return {
            "findings": [f"{f.get('category')} {f.get('severity')}: {f.get('title')}" for f in found],
            "analyzers_failed": doc.get("analyzers_failed") or {},
        }  # fmt: skip
    if step.startswith("fix-") and isinstance(doc, dict):
        return {
            "baseline_p50_ms": _p50_ms(doc.get("baseline") or {}),
            "trials": [trial_line(t) for t in doc.get("trials") or []],
            "accepted": doc.get("accepted"),
            "reference_check": doc.get("reference_check"),
        }
    if step == "kernels" and isinstance(doc, dict):
        return {
            "device": doc.get("device"),
            "copy_gbps": doc.get("copy_gbps"),
            "kernels_measured": len(doc.get("kernels") or []),
            "bert": doc.get("bert"),
        }
    if step == "overhead":
        text = (outdir / "logs" / "overhead.out").read_text(errors="replace")
        return {"ratios": [ln for ln in text.splitlines() if " / " in ln]}
    return {}


def _p50_ms(stats: dict[str, Any]) -> float | None:
    """Median step time in ms from a fix document's step statistics (p50_ns, or older p50_ms)."""
    if stats.get("p50_ns") is not None:
        return stats["p50_ns"] / 1e6
    return stats.get("p50_ms")


def trial_line(t: dict[str, Any]) -> str:
    """One trial of `dsprof fix --json` in a line: outcome, speedup [95 % interval], reason."""
    line = f"{t.get('recipe')}: {t.get('outcome')}"
    if t.get("speedup") is not None:
        line += f" x{t['speedup']:.2f}"
    if t.get("ci95"):
        line += " [{:.2f}, {:.2f}]".format(*t["ci95"])
    p50 = _p50_ms(t.get("metrics") or t)
    if p50 is not None:
        line += f", p50 {p50:.2f} ms"
    return line + (f"; {str(t['reason'])[:200]}" if t.get("reason") else "")


def write_summary(outdir: Path, steps: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """summary.json and summary.md (the check rewrites them after every step)."""
    doc = {"schema_version": SUMMARY_VERSION, **meta, "steps": steps}
    (outdir / "summary.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    lines = [
        f"# GPU check ({meta['mode']}) {meta['started']}",
        "",
        f"budget {meta['budget_s']:.0f} s (limits x{meta.get('time_scale', 1):g}), "
        f"spent {meta.get('spent_s', 0)} s; "
        f"python {sys.version.split()[0]}",
        *([f"bundle: {meta['bundle']}"] if meta.get("bundle") else []),
        "",
        "| step | outcome | seconds | limit | note |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in steps:
        note = str(r["reason"]).replace("|", "/")
        lines.append(
            f"| {r['name']} | {r['outcome']} | {r['elapsed_s']} | {r['limit_s']} | {note} |"
        )
    for r in steps:
        if r["facts"]:
            lines += ["", f"## {r['name']}: {r['what']}", ""]
            for k, v in r["facts"].items():
                items = v if isinstance(v, list) else [v]
                lines += [f"- {k}: {item}" for item in items] if items else [f"- {k}: none"]
    redo = [r["name"] for r in steps if r["outcome"] in ("failed", "timeout")]
    if redo:
        lines += ["", f"re-run: python bench/gpu_check.py --only {','.join(redo)} OUTDIR"]
    (outdir / "summary.md").write_text("\n".join(lines) + "\n")


def tier(path: Path) -> int:
    """0: summaries, logs, JSON, metrics; 1: traces; 2: captured outputs (tensors)."""
    parts = path.parts
    if "outputs" in parts:
        return 2
    if "trace" in parts or path.name.endswith((".pt.trace.json", ".pt.trace.json.gz")):
        return 1
    return 0


def choose(outdir: Path, budget_bytes: float) -> tuple[list[Path], list[Path]]:
    """(kept, left out): every file of outdir, the least needed left out while over budget."""
    files = sorted(p for p in outdir.rglob("*") if p.is_file())
    kept, left = [], []
    total = 0
    # smaller files of a tier first, so the budget keeps as many of them as it can
    for p in sorted(files, key=lambda p: (tier(p.relative_to(outdir)), p.stat().st_size)):
        size = p.stat().st_size
        if total + size <= budget_bytes:
            kept.append(p)
            total += size
        else:
            left.append(p)
    return kept, left


def bundle(outdir: Path, dest: Path, budget_bytes: float) -> str:
    """Write the bundle into dest; returns one line saying what it holds."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob(f"{ARCHIVE}*"):
        old.unlink()
    data, kept, left = _archive(outdir, budget_bytes)
    while len(data) > MAX_PARTS * PART_BYTES:  # sizes are counted before compression
        budget_bytes *= 0.8
        data, kept, left = _archive(outdir, budget_bytes)
    pieces = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)] or [b""]
    if len(pieces) == 1:
        (dest / ARCHIVE).write_bytes(data)
    else:
        for i, piece in enumerate(pieces):
            (dest / f"{ARCHIVE}.part{i:02d}").write_bytes(piece)
    copy_summaries(outdir, dest)
    return (
        f"{len(kept)} files, {len(data) / 2**20:.1f} MiB compressed in {len(pieces)} piece(s); "
        f"{len(left)} left out"
    )


def _archive(outdir: Path, budget_bytes: float) -> tuple[bytes, list[Path], list[Path]]:
    """The .tar.gz of what fits the budget, with bundle.txt naming what did not."""
    kept, left = choose(outdir, budget_bytes)
    note = "\n".join(
        [f"left out (over the {budget_bytes / 2**20:.0f} MiB budget): {len(left)} files"]
        + [f"{p.relative_to(outdir)}\t{p.stat().st_size}" for p in left]
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for p in kept:
            tar.add(p, arcname=str(Path("gpu-check") / p.relative_to(outdir)))
        info = tarfile.TarInfo("gpu-check/bundle.txt")
        info.size = len(note.encode())
        tar.addfile(info, io.BytesIO(note.encode()))
    return buf.getvalue(), kept, left


def copy_summaries(outdir: Path, dest: Path) -> None:
    """summary.json and summary.md next to the archive, readable without unpacking it."""
    for name in ("summary.json", "summary.md"):
        if (outdir / name).is_file():
            (dest / name).write_bytes((outdir / name).read_bytes())
