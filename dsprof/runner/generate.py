"""The token ids a script's generate() calls return, for the drift guard of `dsprof fix`.

A transformers generate() call runs the model once per new token; comparing the logits of the
first few forward calls says little about the text (issue 17: int8 passed "top-1 1.000" while 12
of 24 generated tokens changed). So the child records what generate() returned: the sequences
and the prompt's length, for the first MAX_CALLS calls within MAX_BYTES, written to
outputs/generated.pt at the end of the run.

How: `transformers.generation.utils.GenerationMixin.generate` is wrapped when that module is
imported (a post-import hook on sys.meta_path: dsprof never imports transformers itself, and a
script that does not use it never loads it). The wrapper calls the original and returns its
result unchanged; a generate() nested in another (a subclass calling super().generate) is
recorded once. `in_generate()` tells the child's other hooks that a model call is a decode step
(its calls carry a KV cache from one to the next).

File format (torch.save, loadable with weights_only=True):
    {"calls": [{"sequences": LongTensor [batch, length], "prompt_len": int}], "total_calls": int,
     "model": class name of the first model whose generate() was called}
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

GENERATION_MODULE = "transformers.generation.utils"
MAX_CALLS = 16
MAX_BYTES = 256 * 1024

_local = threading.local()


def in_generate() -> bool:
    """True while this thread is inside a generate() call dsprof wrapped."""
    return getattr(_local, "depth", 0) > 0


class GeneratedTokens:
    """Collects generate() results in the child; `install()` hooks them, `write()` saves them."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.total_calls = 0
        self.model = ""
        self.bytes = 0
        self._lock = threading.Lock()
        self._finder: _PostImportFinder | None = None
        self._patched: tuple[Any, Any] | None = None

    # -- installing ---------------------------------------------------------------------------
    def install(self) -> None:
        """Wrap generate() now if transformers' generation module is loaded, else when it is."""
        module = sys.modules.get(GENERATION_MODULE)
        if module is not None:
            self._patch(module)
            return
        self._finder = _PostImportFinder(GENERATION_MODULE, self._patch)
        sys.meta_path.insert(0, self._finder)

    def uninstall(self) -> None:
        """Put generate() and sys.meta_path back as they were."""
        if self._finder is not None and self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        self._finder = None
        if self._patched is not None:
            cls, original = self._patched
            cls.generate = original
            self._patched = None

    def _patch(self, module: ModuleType) -> None:
        cls = getattr(module, "GenerationMixin", None)
        original = getattr(cls, "generate", None)
        if cls is None or original is None or getattr(original, "__dsprof_wrapped__", False):
            return
        record = self.record

        @functools.wraps(original)
        def generate(model: Any, *args: Any, **kwargs: Any) -> Any:
            depth = getattr(_local, "depth", 0)
            _local.depth = depth + 1
            try:
                out = original(model, *args, **kwargs)
            finally:
                _local.depth = depth
            if depth == 0:
                # recording must never change the script's outcome
                with contextlib.suppress(Exception):
                    record(model, args, kwargs, out)
            return out

        generate.__dsprof_wrapped__ = True  # type: ignore[attr-defined]
        cls.generate = generate
        self._patched = (cls, original)

    # -- recording ----------------------------------------------------------------------------
    def record(self, model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        """Keep one generate() call's token ids (within MAX_CALLS and MAX_BYTES)."""
        import torch

        with self._lock:
            self.total_calls += 1
            self.model = self.model or type(model).__name__
            if len(self.calls) >= MAX_CALLS:
                return
        sequences = out if isinstance(out, torch.Tensor) else getattr(out, "sequences", None)
        if not isinstance(sequences, torch.Tensor) or sequences.dim() != 2:
            return
        nbytes = sequences.numel() * 8
        with self._lock:
            if self.bytes + nbytes > MAX_BYTES:
                return
            self.bytes += nbytes
            self.calls.append(
                {
                    "sequences": sequences.detach().to("cpu", torch.long, copy=True),
                    "prompt_len": prompt_length(model, args, kwargs),
                }
            )

    def write(self, path: Path) -> None:
        """outputs/generated.pt when the script called generate(); nothing otherwise."""
        if not self.total_calls:
            return
        import torch

        doc = {"calls": self.calls, "total_calls": self.total_calls, "model": self.model}
        # a full disk must not turn a finished run into a failed one
        with contextlib.suppress(Exception):
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(doc, path)

    def facts(self) -> dict[str, Any]:
        """What child.json says about generate(): calls seen and the model's class."""
        return {"calls": self.total_calls, "model": self.model} if self.total_calls else {}


def prompt_length(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Positions of the returned sequences that are not generated: the prompt for decoder-only
    models; the decoder's start (and any given decoder_input_ids) for encoder-decoder ones."""
    import torch

    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        start = kwargs.get("decoder_input_ids")
        return int(start.shape[-1]) if isinstance(start, torch.Tensor) else 1
    ids = kwargs.get("input_ids", kwargs.get("inputs"))
    if ids is None and args:
        ids = args[0]
    if isinstance(ids, torch.Tensor) and ids.dim() >= 1:
        return int(ids.shape[-1])
    embeds = kwargs.get("inputs_embeds")
    return int(embeds.shape[1]) if isinstance(embeds, torch.Tensor) and embeds.dim() == 3 else 0


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Runs `then(module)` right after the module named `name` is executed by its own loader."""

    def __init__(self, name: str, then: Any) -> None:
        self.name = name
        self.then = then

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        spec = None
        for finder in sys.meta_path:  # the finder that would have found it without us
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        loader, then = spec.loader, self.then
        original_exec = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original_exec(module)
            then(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
