"""The explicit registry of recipes, in the order they are tried."""

from __future__ import annotations

from dsprof.core.errors import UsageError
from dsprof.recipes.alloc_conf import AllocConfRecipe
from dsprof.recipes.base import Recipe
from dsprof.recipes.batching import BatchingRecipe
from dsprof.recipes.bf16 import Bf16Recipe
from dsprof.recipes.compile import CompileRecipe
from dsprof.recipes.cuda_graphs import CudaGraphsRecipe
from dsprof.recipes.dataloader import DataLoaderRecipe
from dsprof.recipes.eval_mode import EvalModeRecipe
from dsprof.recipes.fp16 import Fp16Recipe
from dsprof.recipes.fused_kernels import FusedKernelsRecipe
from dsprof.recipes.inference_mode import InferenceModeRecipe
from dsprof.recipes.int8_dynamic import Int8DynamicRecipe
from dsprof.recipes.pinned_memory import PinnedMemoryRecipe
from dsprof.recipes.sdpa import SdpaRecipe
from dsprof.recipes.tf32 import Tf32Recipe
from dsprof.recipes.threads import ThreadsRecipe
from dsprof.recipes.weight_only_int8 import WeightOnlyInt8Recipe

RECIPES: tuple[type[Recipe], ...] = (
    EvalModeRecipe,
    InferenceModeRecipe,
    ThreadsRecipe,
    DataLoaderRecipe,
    PinnedMemoryRecipe,
    AllocConfRecipe,
    Int8DynamicRecipe,
    WeightOnlyInt8Recipe,
    Bf16Recipe,
    Fp16Recipe,
    Tf32Recipe,
    SdpaRecipe,
    FusedKernelsRecipe,
    CompileRecipe,
    CudaGraphsRecipe,
    BatchingRecipe,
)
BY_NAME: dict[str, type[Recipe]] = {r.name: r for r in RECIPES}


def get_recipe(name: str) -> Recipe:
    """A recipe by its id; a UsageError naming the known ids otherwise."""
    try:
        return BY_NAME[name]()
    except KeyError:
        raise UsageError(f"unknown recipe {name!r}; known: {', '.join(BY_NAME)}") from None


def recipes_for(categories: set[str]) -> list[Recipe]:
    """Recipes that address any of the finding categories, in registry order."""
    return [r() for r in RECIPES if set(r.addresses) & categories]
