"""pinned-memory: page-locked host batches so host-to-device copies are fast and asynchronous.

Addresses: io-stall (pageable host-to-device memcpy in the trace).
Change: DataLoaders are built with `pin_memory=True` (run time: DataLoader.__init__ wrapped and
    restored; `--apply`: the keyword set on the DataLoader calls). Moving batches with
    `.to(device, non_blocking=True)` is the second half, printed for the user to make by hand.
Risks: exact; pinned memory is a limited resource (too much of it slows the whole host).
Verification: outputs must equal the baseline's; GPU only (on the CPU there is no copy to speed up).
"""

from __future__ import annotations

from typing import Any

from dsprof.recipes.base import CodeChange, Recipe, Undo
from dsprof.recipes.dataloader import patch_dataloader


class PinnedMemoryRecipe(Recipe):
    """pin_memory=True on the DataLoaders."""

    name = "pinned-memory"
    risk = "exact"
    addresses = ("io-stall",)
    needs_gpu = True
    order = 2

    def applicable(self, run: Any) -> tuple[bool, str]:
        ok, why = super().applicable(run)
        if not ok:
            return ok, why
        loaders = run.child.dataloaders
        if not loaders:
            return False, "the script built no torch DataLoader"
        if all(d.pin_memory for d in loaders):
            return False, "its DataLoaders already pin memory"
        return True, "DataLoader batches are pageable host memory"

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        return patch_dataloader({"pin_memory": True}, status)

    def codemod(self, run: Any = None) -> CodeChange:
        return CodeChange(
            dataloader_kwargs={"pin_memory": "True"},
            manual="move batches with `.to(device, non_blocking=True)` so the pinned copy overlaps",
        )
