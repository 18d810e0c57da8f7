"""One sentence of action per finding: where in the code, what is wrong, the change to try, and
the exact `dsprof fix` command that tests it.

    "DataLoader at examples/cnn_dataloader.py:90 runs with num_workers=0; try num_workers=2,
     persistent_workers=True, prefetch_factor=4 — `dsprof fix examples/cnn_dataloader.py
     --batches 16` tests it."

The place comes from what the child saw (child.json: DataLoader call sites, the line that calls
the model), the change from the first recipe the finding names (its codemod: the code `--apply`
would write), the command from the run's own argv (the script and its arguments, as typed).
Paths are shown relative to the repository (or the run's working directory). Pure: reads the
run's documents, never the script.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dsprof.core.findings import Finding
    from dsprof.core.manifest import RunManifest
    from dsprof.store.run_store import RunData


@dataclass(frozen=True)
class Action:
    """What to do about one finding."""

    sentence: str  # where, what, the change (no command)
    command: str  # `dsprof fix ...` that tests it, or "" when no recipe applies here
    where: str = ""  # file:line, repository-relative, or ""

    @property
    def text(self) -> str:
        """The whole sentence, command included ("" when there is nothing to say)."""
        if not self.sentence:
            return ""
        if not self.command:
            return self.sentence + "."
        return f"{self.sentence} — `{self.command}` tests it."


def display_path(path: str | None, cwd: str | None = None) -> str:
    """A path as a reader of the repository knows it: relative to the git repository that holds
    it, else to the run's working directory, else as recorded."""
    if not path:
        return ""
    p = Path(path)
    if not p.is_absolute():
        return path
    for parent in p.parents:
        if (parent / ".git").exists():
            return str(p.relative_to(parent))
    if cwd:
        try:
            return str(p.relative_to(cwd))
        except ValueError:
            pass
    return path


def fix_command(manifest: RunManifest | None, *, repo_relative: bool = False) -> str:
    """`dsprof fix` with the script and its own arguments, as the run was started (from the
    run's working directory), or with the script's path relative to its repository
    (`repo_relative`: for pages and pull requests, read away from the run's directory); "" for
    runs fix cannot trial (multi-rank jobs, bare traces, load and watch runs)."""
    if manifest is None or manifest.world_size or manifest.kind not in ("script", "module"):
        return ""
    if not manifest.argv:
        return ""
    first = manifest.argv[0]
    if manifest.kind == "script" and repo_relative:
        first = display_path(str(Path(manifest.cwd) / first), manifest.cwd)
    elif manifest.kind == "script" and Path(first).is_relative_to(manifest.cwd):
        # typed as an absolute path inside the working directory: shown relative to it
        first = str(Path(first).relative_to(manifest.cwd))
    argv = " ".join(shlex.quote(a) for a in [first, *manifest.argv[1:]])
    return f"dsprof fix {'-m ' if manifest.kind == 'module' else ''}{argv}"


def display_paths(text: str, cwd: str | None = None) -> str:
    """Text with each absolute path in it shown as display_path shows it (an evidence
    source such as "child.json /home/me/repo/train.py:90")."""
    return re.sub(r"(?<![\w./:])/[^\s:,;()]+", lambda m: display_path(m.group(0), cwd), text)


def _where(file: str | None, line: int | None, cwd: str | None) -> str:
    shown = display_path(file, cwd)
    return f"{shown}:{line}" if shown and line else shown


def recipe_change(name: str, run: RunData | None) -> tuple[str, bool]:
    """The change a recipe makes, as code (keyword arguments, a statement), or the first clause
    of the step it leaves to the user; and whether it is such a manual step."""
    from dsprof.recipes.registry import BY_NAME

    recipe = BY_NAME.get(name)
    if recipe is None:
        return name, False
    try:
        change = recipe().codemod(run)
    except Exception:  # a recipe that cannot say its code for this run: name it instead
        return f"the {name} recipe", False
    if change.dataloader_kwargs:
        return ", ".join(f"{k}={v}" for k, v in change.dataloader_kwargs.items()), False
    lines = [*change.before_imports, *change.top, *change.model]
    if lines:  # the variable holding the network is the script's; "model" stands for it
        return "; ".join(line.replace("{model}", "model") for line in lines[:2]), False
    if change.manual:  # a step to make by hand: its first clause says what
        return re.split(r"[:.;]\s", change.manual, maxsplit=1)[0], True
    return f"the {name} recipe", False


def _loader_phrase(run: RunData, cwd: str | None) -> tuple[str, str]:
    loaders = run.child.dataloaders
    if not loaders:
        return "the loop waits for its next batch", ""
    dl = loaders[0]
    where = _where(dl.file, dl.line, cwd)
    workers = dl.num_workers
    at = f" at {where}" if where else ""
    if workers == 0:
        return f"DataLoader{at} runs with num_workers=0 (batches load in the loop)", where
    return f"DataLoader{at} uses {workers} workers and the loop still waits for data", where


def _model_phrase(run: RunData, cwd: str | None, what: str) -> tuple[str, str]:
    site = run.child.call_site
    module = run.facts.main_module or "the model"
    where = _where(site.file, site.line, cwd) if site is not None else ""
    at = f" (called at {where})" if where else ""
    return f"{module}{at} {what}", where


def _what(finding: Finding, run: RunData, cwd: str | None) -> tuple[str, str]:
    """(what is wrong, where) for a finding, from the run's facts; ("", "") when the run's
    documents say nothing the title does not (the title says what is wrong)."""
    c = finding.category
    if c == "io-stall":
        return _loader_phrase(run, cwd)
    if c == "autograd-in-inference":
        return _model_phrase(run, cwd, "runs with autograd on")
    if c == "train-mode-in-inference":
        return _model_phrase(run, cwd, "runs in training mode (dropout and batch-norm updates on)")
    if c == "cpu-fp32-linear":
        return _model_phrase(run, cwd, "spends its time in fp32 Linear layers on the CPU")
    if c == "small-batch":
        return _model_phrase(run, cwd, "is called with small batches")
    if c == "cpu-threads":
        threads, cores = run.facts.torch_threads, run.facts.usable_cores
        if threads and cores:
            return f"torch uses {threads} threads on {cores:g} usable cores", ""
    if c == "host-sync" and run.child.call_site is not None:
        return _model_phrase(run, cwd, "is followed by host syncs (.item(), .cpu()) each iteration")
    return "", ""


def finding_action(finding: Finding, run: RunData | None, command: str = "") -> Action:
    """The action sentence for one finding (see the module docstring)."""
    cwd = run.manifest.cwd if run is not None and run.manifest is not None else None
    what, where = _what(finding, run, cwd) if run is not None else ("", "")
    what = what[:1].upper() + what[1:]
    if not finding.recipes:
        return Action(sentence=what, command="", where=where)
    change, manual = recipe_change(finding.recipes[0], run)
    step = f"change by hand: {change}" if manual else f"try {change}"
    if not what:
        return Action(sentence=step[:1].upper() + step[1:], command=command, where=where)
    return Action(sentence=f"{what}; {step}", command=command, where=where)


def run_actions(run: RunData, findings: list[Finding]) -> list[Action]:
    """The action of each finding, in the order given."""
    command = fix_command(run.manifest)
    return [finding_action(f, run, command) for f in findings]
