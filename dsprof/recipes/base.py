"""The recipe contract: what a recipe addresses, whether it applies, how it runs, how it is written.

A recipe class has:
    name        registry id (kebab-case), e.g. "int8-dynamic"
    risk        "exact" (outputs must be reproduced), "approximate" (drift within tolerance) or
                "deterministic" (eval-mode: judged by outputs becoming deterministic)
    addresses   finding categories it addresses (issue 3's ids)
    order       first-call hooks of stacked recipes run in ascending order (eval before
                quantization before kernel swaps before compilation)
    conflicts   recipes it must not be stacked with
    concurrent_calls   False when it cannot run while the script calls its model from several
                threads at once (it replays or captures calls on one thread)
    applicable(run) -> (applies, why)   read from the baseline run folder only; no torch needed
    env(options) -> {name: value}       set by the parent before torch loads in the trial child
    install(tracker, options, status) -> undo   in the trial child: flags, patches, hooks
    codemod(run) -> CodeChange           what `dsprof fix --apply` writes into the script

Its docstring has the sections Addresses / Change / Risks / Verification.
Recipes are imported by the parent without torch; torch is imported inside install() only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from dsprof.core.fix import RiskClass
    from dsprof.store.run_store import RunData

Undo = Callable[[], None]


def no_undo() -> None:
    """For recipes whose whole effect lives on the script's own objects (nothing global)."""


@dataclass(frozen=True)
class CodeChange:
    """Plain PyTorch code that makes a recipe's change permanent (no dsprof at run time).

    `model` statements use the placeholder `{model}` for the variable holding the network; they go
    right after the statement that last assigns it before the call site. `top` statements go after
    the imports; `before_imports` ones before the first import (environment variables that must
    be set before torch loads). `dataloader_kwargs` are keyword arguments set on every
    `DataLoader(...)` call. `manual`, when set, is a change that cannot be made safely by a
    codemod: it is printed for the user instead.
    """

    imports: tuple[str, ...] = ()
    before_imports: tuple[str, ...] = ()
    top: tuple[str, ...] = ()
    model: tuple[str, ...] = ()
    dataloader_kwargs: dict[str, str] = field(default_factory=dict)
    manual: str = ""


class Recipe:
    """Base class of the recipes; subclasses set the class attributes and override methods."""

    name: ClassVar[str] = ""
    risk: ClassVar[RiskClass] = "approximate"
    addresses: ClassVar[tuple[str, ...]] = ()
    order: ClassVar[int] = 50
    conflicts: ClassVar[tuple[str, ...]] = ()
    needs_gpu: ClassVar[bool] = False
    concurrent_calls: ClassVar[bool] = True

    def applicable(self, run: RunData) -> tuple[bool, str]:
        """Whether this recipe can change this run, and why (not)."""
        if self.needs_gpu and not uses_cuda(run):
            return False, f"needs a CUDA GPU; this run used none ({cpu_reason(run)})"
        return True, "applies"

    def options(self, run: RunData) -> dict[str, Any]:
        """Options for the trial derived from the baseline run (user options override them)."""
        return {}

    def env(self, options: dict[str, Any]) -> dict[str, str]:
        """Environment variables for the trial child, set before torch loads."""
        return {}

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        """Apply the recipe in the trial child; returns the function that undoes global changes."""
        raise NotImplementedError

    def codemod(self, run: RunData | None = None) -> CodeChange:
        """The code `--apply` writes into the script."""
        raise NotImplementedError


def note_change(status: dict[str, Any], changed: bool, why: str = "") -> None:
    """Record in a trial's recipe status whether the recipe changed anything (issue 17: a trial
    that changes nothing must say so and is never accepted). Once any root was changed, the
    recipe counts as having changed the run."""
    if changed:
        status["changed"] = True
        status.pop("unchanged", None)
    elif status.get("changed") is not True:
        status["changed"] = False
        status["unchanged"] = why


# -- facts about the baseline run, read from child.json ---------------------------------------


def uses_cuda(run: RunData) -> bool:
    """True when the run's work ran on a GPU torch drives as `cuda` (RunFacts.uses_cuda)."""
    return run.facts.uses_cuda


def cpu_reason(run: RunData) -> str:
    """Why the run counts as not using a CUDA GPU, in words."""
    facts = run.facts
    devices = run.child.device_types or ["cpu"]
    where = f"outputs on {', '.join(devices)}"
    if facts.device.kind == "cpu":
        return f"{where}, no GPU seen"
    return f"{where}; {facts.device.label} present but unused" if not facts.uses_device else where


def concurrent_threads(run: RunData) -> int:
    """Threads the model was called from when calls overlapped (0: one caller at a time)."""
    from dsprof.core.steps import steps_overlap

    steps = run.steps
    if steps is None or not len(steps) or "thread_id" not in steps:
        return 0
    threads = int(steps["thread_id"].nunique())
    return threads if threads > 1 and steps_overlap(steps) else 0


def concurrency_reason(run: RunData) -> str:
    """Why a recipe that needs one caller at a time does not apply to this run."""
    return (
        f"the script calls its model from {concurrent_threads(run)} threads at once; this recipe "
        "replays or captures calls on one thread and does not support concurrent calls"
    )


def script_autocast(run: RunData) -> dict[str, str]:
    """The autocast the script already calls its model under ({device: dtype}; {} for none)."""
    seen = run.child.model_seen(run.facts.main_module)
    return dict(seen.autocast) if seen is not None else {}


def finding_categories(run: RunData) -> set[str]:
    """Categories of the run's stored findings (empty when it was not analysed)."""
    doc = run.findings
    return {f.category for f in doc.findings} if doc is not None else set()


def has_fp32_model(run: RunData) -> tuple[bool, str]:
    """Whether a root module holds float32 parameters (the input of the precision recipes)."""
    facts = run.facts
    if not facts.root_modules:
        return False, "no nn.Module was called as a step (dsprof.step() markers only)"
    if "float32" not in facts.param_dtypes:
        return False, f"no float32 parameters (dtypes: {list(facts.param_dtypes)})"
    return True, "float32 parameters in " + ", ".join(facts.root_modules)
