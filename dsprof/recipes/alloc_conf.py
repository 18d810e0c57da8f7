"""alloc-conf: configure the CUDA caching allocator (PYTORCH_CUDA_ALLOC_CONF).

Addresses: memory-fragmentation (reserved far above allocated, inactive split blocks, retries),
    gpu-idle when its cause is allocator calls (expandable segments grow a reservation in place
    instead of returning to cudaMalloc/cudaFree; the finding also says to keep the caching
    allocator on, which PYTORCH_NO_CUDA_MEMORY_CACHING turns off).
Change: `PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True` (kept with any settings already there)
    in the trial's environment before torch loads; `--apply` sets it with os.environ.setdefault at
    the very top of the script, before the first import.
Risks: exact (allocation only). Must be set before the first CUDA allocation; a script that sets
    its own value keeps it.
Verification: outputs must equal the baseline's; peak reserved memory and speed are measured.
    GPU only: on the CPU there is no caching allocator to configure.
"""

from __future__ import annotations

import os
from typing import Any

from dsprof.recipes.base import CodeChange, Recipe, Undo, no_undo

ENV_VAR = "PYTORCH_CUDA_ALLOC_CONF"
DEFAULT_SETTING = "expandable_segments:True"


def merged_setting(current: str | None, setting: str = DEFAULT_SETTING) -> str:
    """`setting` added to an existing comma-separated allocator config, keeping the rest."""
    key = setting.split(":", 1)[0]
    parts = [p for p in (current or "").split(",") if p and not p.startswith(key + ":")]
    return ",".join([*parts, setting])


class AllocConfRecipe(Recipe):
    """expandable_segments for the CUDA caching allocator."""

    name = "alloc-conf"
    risk = "exact"
    addresses = ("memory-fragmentation", "gpu-idle")
    needs_gpu = True
    order = 0

    def env(self, options: dict[str, Any]) -> dict[str, str]:
        return {
            ENV_VAR: merged_setting(
                os.environ.get(ENV_VAR), options.get("setting", DEFAULT_SETTING)
            )
        }

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        status[ENV_VAR] = os.environ.get(ENV_VAR)
        if DEFAULT_SETTING.split(":")[0] not in (os.environ.get(ENV_VAR) or ""):
            status["note"] = f"{ENV_VAR} was not set before torch loaded"
        return no_undo

    def codemod(self, run: Any = None) -> CodeChange:
        return CodeChange(
            before_imports=(
                "import os",
                f'os.environ.setdefault("{ENV_VAR}", "{DEFAULT_SETTING}")',
            )
        )
