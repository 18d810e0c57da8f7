"""dataloader: load batches in worker processes, ahead of the model.

Addresses: io-stall, gpu-idle (steps waiting on `__getitem__` / collate in the main process).
Change: every `DataLoader(...)` built with `num_workers=0` gets `num_workers=N` (default: the usable
    cores, at most DEFAULT_MAX_WORKERS), `persistent_workers=True` and `prefetch_factor=4`, and
    `pin_memory=True` when CUDA is in use. At run time DataLoader.__init__ is wrapped (and
    restored); `--apply` sets the same keyword arguments on the DataLoader calls in the script.
Risks: exact for a deterministic dataset (batches keep their order); workers fork the process,
    so a dataset holding open files or CUDA tensors may misbehave, and random augmentations draw
    from per-worker seeds.
Verification: outputs must equal the baseline's (fp32 allclose); the speedup is measured.
"""

from __future__ import annotations

from typing import Any

from dsprof.recipes.base import CodeChange, Recipe, Undo, uses_cuda

# workers beyond 4 rarely help an inference loader and each costs a process (PyTorch's DataLoader
# docs: tune num_workers; the TensorBoard profiler plugin suggests starting at 4)
DEFAULT_MAX_WORKERS = 4
DEFAULT_PREFETCH = 4
# DataLoader(dataset, batch_size, shuffle, sampler, batch_sampler, num_workers, ...)
NUM_WORKERS_POSITION = 5


def default_workers() -> int:
    """Usable cores (affinity and cgroup quota), capped at DEFAULT_MAX_WORKERS, at least 2."""
    from dsprof.collectors.cpus import whole_usable_cores

    return max(2, min(DEFAULT_MAX_WORKERS, whole_usable_cores()))


def loader_settings(options: dict[str, Any], cuda: bool) -> dict[str, Any]:
    """The DataLoader keyword arguments this recipe sets."""
    settings: dict[str, Any] = {
        "num_workers": int(options.get("num_workers", default_workers())),
        "persistent_workers": True,
        "prefetch_factor": int(options.get("prefetch_factor", DEFAULT_PREFETCH)),
    }
    if cuda:
        settings["pin_memory"] = True
    return settings


def patch_dataloader(settings: dict[str, Any], status: dict[str, Any]) -> Undo:
    """Wrap DataLoader.__init__ so loaders built with num_workers=0 get `settings`."""
    import functools

    from torch.utils.data import DataLoader

    original = DataLoader.__init__

    @functools.wraps(original)
    def patched_init(self: Any, *args: Any, **kwargs: Any) -> None:
        positional = len(args) > NUM_WORKERS_POSITION
        workers = args[NUM_WORKERS_POSITION] if positional else kwargs.get("num_workers", 0)
        if workers == 0 and not positional:
            kwargs.update(settings)
            status["patched_loaders"] = int(status.get("patched_loaders", 0)) + 1
        original(self, *args, **kwargs)

    DataLoader.__init__ = patched_init  # type: ignore[method-assign]

    def undo() -> None:
        DataLoader.__init__ = original  # type: ignore[method-assign]

    return undo


class DataLoaderRecipe(Recipe):
    """DataLoader workers, prefetching and persistent workers."""

    name = "dataloader"
    risk = "exact"
    addresses = ("io-stall", "gpu-idle")
    order = 1

    def applicable(self, run: Any) -> tuple[bool, str]:
        loaders = run.child.dataloaders
        if not loaders:
            return False, "the script built no torch DataLoader"
        single = [d for d in loaders if d.num_workers == 0]
        if not single:
            return False, f"its {len(loaders)} DataLoader(s) already use worker processes"
        where = ", ".join(f"{d.file}:{d.line}" for d in single[:3])
        return (
            True,
            f"{len(single)} DataLoader(s) load in the main process (num_workers=0) at {where}",
        )

    def options(self, run: Any) -> dict[str, Any]:
        # pinned host memory only helps copies to a GPU: the baseline's work ran on one
        return {"pin_memory": uses_cuda(run)}

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        import torch

        pin = options.get("pin_memory")
        settings = loader_settings(options, torch.cuda.is_available() if pin is None else pin)
        status["settings"] = settings
        return patch_dataloader(settings, status)

    def codemod(self, run: Any = None) -> CodeChange:
        cuda = bool(run is not None and uses_cuda(run))
        return CodeChange(
            dataloader_kwargs={k: repr(v) for k, v in loader_settings({}, cuda).items()}
        )
