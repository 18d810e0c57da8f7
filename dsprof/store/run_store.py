"""Run folders on disk: naming new ones, finding existing ones, and loading one for analysis."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsprof.core.child import ChildInfo
from dsprof.core.errors import RunFolderError, UsageError
from dsprof.core.facts import RunFacts
from dsprof.core.findings import FindingsDocument
from dsprof.core.load import LoadSummary
from dsprof.core.manifest import RunManifest
from dsprof.store.documents import (
    read_child_info,
    read_findings,
    read_load_summary,
    read_manifest,
)
from dsprof.store.layout import (
    DEFAULT_RUNS_DIR,
    MANIFEST,
    RunPaths,
    is_short_run_id,
    is_valid_run_id,
)

if TYPE_CHECKING:
    import pandas as pd

_SLUG_RE = re.compile(r"[^A-Za-z0-9_.-]+")


def slugify(name: str) -> str:
    """A folder-safe form of a script stem or user-given name."""
    slug = _SLUG_RE.sub("-", name).strip("-.") or "run"
    return slug[:48]


def check_writable_dir(out: Path) -> None:
    """Fail before anything runs when the runs directory cannot be created or written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the output directory: {e.strerror}", path=out) from None
    if not out.is_dir():
        raise UsageError("the output path exists and is not a directory", path=out)
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError("the output directory is not writable", path=out)


def create_run_folder(out: Path, stem: str, now_s: float | None = None) -> RunPaths:
    """Create `<out>/<YYYYmmdd-HHMMSS>-<stem>-<4 hex>`; mkdir is exclusive, so runs never collide."""
    check_writable_dir(out)
    stamp = time.strftime(
        "%Y%m%d-%H%M%S", time.localtime(now_s if now_s is not None else time.time())
    )
    slug = slugify(stem)
    for _ in range(64):
        run_id = f"{stamp}-{slug}-{secrets.token_hex(2)}"
        root = out / run_id
        try:
            root.mkdir()
        except FileExistsError:
            continue
        paths = RunPaths(root)
        paths.make_dirs()
        return paths
    raise UsageError("could not find a free run folder name", path=out)


@dataclass
class RunStore:
    """All run folders under one directory (default .dsprof/runs)."""

    root: Path = field(default_factory=lambda: DEFAULT_RUNS_DIR)

    def run_dirs(self) -> list[Path]:
        """Run folders (those with a run.json), newest first by name."""
        if not self.root.is_dir():
            return []
        dirs = [p for p in self.root.iterdir() if p.is_dir() and (p / MANIFEST).is_file()]
        return sorted(dirs, key=lambda p: p.name, reverse=True)

    def manifests(self) -> Iterator[tuple[Path, RunManifest | RunFolderError]]:
        """Each run folder with its manifest, or the error that kept it from being read."""
        for d in self.run_dirs():
            try:
                yield d, read_manifest(d / MANIFEST)
            except RunFolderError as e:
                yield d, e

    def resolve(self, ref: str | Path) -> Path:
        """A run folder from its path, its id (the folder name) under this store, its short id
        (the id's last 4 hex digits, when one run has them) or "latest"."""
        p = Path(ref)
        if (p / MANIFEST).is_file():
            return p
        name = str(ref)
        if is_valid_run_id(name) and (self.root / name / MANIFEST).is_file():
            return self.root / name
        if name == "latest" and (dirs := self.run_dirs()):
            return dirs[0]
        if is_short_run_id(name):
            matches = [d for d in self.run_dirs() if d.name.endswith(f"-{name}")]
            if len(matches) == 1:
                return matches[0]
            if matches:
                raise UsageError(
                    f"short id {name} names {len(matches)} runs: give the full id "
                    f"({', '.join(d.name for d in matches[:4])})",
                    path=self.root,
                )
        raise RunFolderError(
            f"no run folder (with a run.json) by that path or id under {self.root}", path=p
        )


def _read_parquet(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a truncated file
        raise RunFolderError(
            f"cannot read the table ({e}); the file may be half written", path=path
        ) from None


@dataclass
class RunData:
    """Everything an analyzer may read about one run. Metrics not collected are None."""

    paths: RunPaths
    manifest: RunManifest | None
    steps: pd.DataFrame | None = None
    host: pd.DataFrame | None = None
    gpu: pd.DataFrame | None = None
    cuda_memory: pd.DataFrame | None = None
    # a rank of a multi-rank job: its torch.distributed calls (name, start_ns, end_ns, async_op)
    collectives: pd.DataFrame | None = None
    # child.json: what the child observed (None when the child wrote none: killed, or a trace)
    child_info: ChildInfo | None = None
    trace_files: list[Path] = field(default_factory=list)
    ranks: dict[int, RunData] = field(default_factory=dict)

    @cached_property
    def traces(self) -> list[Any]:
        """Parsed traces (dsprof.trace.TraceFrames), one per file, parsed on first use."""
        from dsprof.trace import load_trace

        return [load_trace(p) for p in self.trace_files]

    @cached_property
    def requests(self) -> pd.DataFrame | None:
        """A load run's metrics/requests.parquet (one row per request), None for other runs."""
        return _read_parquet(self.paths.requests)

    @cached_property
    def load(self) -> LoadSummary | None:
        """A load run's load.json, None for other runs."""
        if not self.paths.load_summary.is_file():
            return None
        return read_load_summary(self.paths.load_summary)

    @cached_property
    def facts(self) -> RunFacts:
        """What several consumers need to know about this run, decided once (dsprof.store.facts)."""
        from dsprof.store.facts import build_facts

        return build_facts(self)

    @property
    def child(self) -> ChildInfo:
        """child.json, or every field at its default when the child wrote none."""
        return self.child_info if self.child_info is not None else ChildInfo()

    @property
    def findings(self) -> FindingsDocument | None:
        """The stored findings, or None when the run has not been analysed."""
        if not self.paths.findings.is_file():
            return None
        return read_findings(self.paths.findings)


def load_run(ref: str | Path, store: RunStore | None = None) -> RunData:
    """Load a run folder (path or id) for analysis and reporting."""
    root = (store or RunStore()).resolve(ref)
    return load_run_paths(RunPaths(root), read_manifest(root / MANIFEST))


def load_run_paths(paths: RunPaths, manifest: RunManifest | None) -> RunData:
    """Load a run folder (or one rank's) whose paths and manifest the caller already has."""
    child_info = read_child_info(paths.child_info) if paths.child_info.is_file() else None
    run = RunData(
        paths=paths,
        manifest=manifest,
        steps=_read_parquet(paths.steps),
        host=_read_parquet(paths.host),
        gpu=_read_parquet(paths.gpu),
        cuda_memory=_read_parquet(paths.cuda_memory),
        collectives=_read_parquet(paths.collectives),
        child_info=child_info,
        trace_files=paths.trace_files(),
    )
    if manifest is not None:
        for rank in manifest.ranks:
            rank_paths = paths.rank(rank)
            rank_manifest = (
                read_manifest(rank_paths.manifest) if rank_paths.manifest.is_file() else None
            )
            run.ranks[rank] = load_run_paths(rank_paths, rank_manifest)
    return run
