"""Capturing model outputs (and inputs) of the first steps, for accuracy comparisons."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from dsprof.store.layout import output_step_name

MAX_TENSORS = 64


def flatten_tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Tensors out of tuples, lists, dicts, dataclasses and HF ModelOutput, by dotted path."""
    found: dict[str, torch.Tensor] = {}

    def visit(o: Any, path: str, depth: int) -> None:
        if len(found) >= MAX_TENSORS or depth > 6:
            return
        if isinstance(o, torch.Tensor):
            found[path or "0"] = o
        elif isinstance(o, dict):  # HF ModelOutput is an OrderedDict of its non-None fields
            for k, v in o.items():
                visit(v, f"{path}.{k}" if path else str(k), depth + 1)
        elif isinstance(o, (tuple, list)):
            for i, v in enumerate(o):
                visit(v, f"{path}.{i}" if path else str(i), depth + 1)
        elif dataclasses.is_dataclass(o) and not isinstance(o, type):
            for f in dataclasses.fields(o):
                visit(getattr(o, f.name), f"{path}.{f.name}" if path else f.name, depth + 1)

    visit(obj, prefix, 0)
    return found


def _detached_cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, t in tensors.items():
        if t.is_sparse or t.layout != torch.strided:
            continue
        t = t.detach()
        if hasattr(t, "dequantize") and t.is_quantized:
            t = t.dequantize()
        out[k] = t.to("cpu", copy=True).clone()
    return out


class OutputCapture:
    """Saves the outputs (and inputs) of the first N steps under outputs/.

    At a step end only a detached CPU copy is taken; the files are written by flush() (after the
    traced window, or at the end), so that serialising them never lands inside a traced step.
    """

    def __init__(self, outputs_dir: Path, steps: int) -> None:
        self.dir = outputs_dir
        self.steps = steps
        self.index: list[dict[str, Any]] = []
        self.device_types: set[str] = set()
        self._pending: list[tuple[int, dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []

    def wants(self, step: int) -> bool:
        return step < self.steps

    def save(self, step: int, output: Any, inputs: Any = None) -> None:
        """Keep a CPU copy of this step's tensors; problems are recorded, never raised."""
        out = flatten_tensors(output)
        inp: dict[str, torch.Tensor] = {}
        if inputs is not None:
            args, kwargs = inputs
            inp.update(flatten_tensors(args, "args"))
            inp.update(flatten_tensors(kwargs or {}, "kwargs"))
        self.device_types.update(t.device.type for t in out.values())
        try:
            self._pending.append((step, _detached_cpu(out), _detached_cpu(inp)))
        except Exception as e:  # an exotic tensor subclass must not break the user's run
            self.index.append({"step": step, "file": None, "error": repr(e)})

    def flush(self) -> None:
        """Write the pending copies to outputs/step-NNNN.pt."""
        pending, self._pending = self._pending, []
        for step, out, inp in pending:
            self._write(step, out, inp)

    def _write(self, step: int, out: dict[str, torch.Tensor], inp: dict[str, torch.Tensor]) -> None:
        name = output_step_name(step)
        try:
            torch.save({"output": out, "input": inp}, self.dir / name)
        except Exception as e:
            self.index.append({"step": step, "file": None, "error": repr(e)})
            return
        self.index.append(
            {
                "step": step,
                "file": name,
                "tensors": [
                    {"name": k, "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
                    for k, t in out.items()
                ],
                "inputs": [
                    {"name": k, "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
                    for k, t in inp.items()
                ],
            }
        )

    def write_index(self, path: Path) -> None:
        self.flush()
        self.index.sort(key=lambda e: e["step"])
        path.write_text(json.dumps(self.index, indent=1), encoding="utf-8")
