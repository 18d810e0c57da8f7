"""Capturing the model's outputs (and inputs) of the first steps, for accuracy comparisons.

Within a byte budget: a cap per step and a cap per run (`CaptureBudget`). A step's outputs are
served first, its inputs from what is left; inside each, small tensors are kept whole and the
largest share the rest evenly. A tensor over its share is *sampled*: seen as rows of its last
dimension (a logits row is one position's whole vocabulary, an embedding row one vector), every
`stride`-th row is kept, the stride a power of two, plus summary statistics of the whole tensor.
Power-of-two strides make the rows two runs keep nest (the coarser set is inside the finer), so
the drift guard compares exactly the rows both kept: cosine and top-1 stay exact on them. Only
the kept rows leave the device.

File format (outputs/step-NNNN.pt, torch.save, loadable with weights_only=True):
    {"output": {name: tensor}, "input": {name: tensor},
     "sampled": {"output": {name: meta}, "input": {name: meta}}}
where a sampled tensor is stored as its kept rows, shape [rows, last], and meta is
{"shape": full shape, "rows_of": rows in the whole tensor, "row_stride": stride, "stats": {...}}.

While the child runs, each root module's captures wait under outputs/roots/<root>/ (which root
is the model is known at the end); `finish` moves the model's up to outputs/ and writes the index.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from dsprof.store.layout import RunPaths, output_step_name

MAX_TENSORS = 64
# the default budget keeps the outputs of a run of each shipped example under ~2 MB (docs/run-folder.md)
DEFAULT_STEP_BYTES = 512 * 1024
DEFAULT_RUN_BYTES = 3 * 512 * 1024


@dataclasses.dataclass(frozen=True)
class CaptureBudget:
    """How many bytes of tensors one step, and one run, may keep."""

    step_bytes: int = DEFAULT_STEP_BYTES
    run_bytes: int = DEFAULT_RUN_BYTES


def flatten_tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Tensors out of what a model returns, by dotted path: mappings (dict, transformers'
    ModelOutput and BatchEncoding, any Mapping or UserDict), namedtuples (by field name),
    tuples and lists, dataclasses, numpy arrays, and lists of numbers (one tensor when
    rectangular)."""
    found: dict[str, torch.Tensor] = {}

    def visit(o: Any, path: str, depth: int) -> None:
        if len(found) >= MAX_TENSORS or depth > 6:
            return
        key = path or "0"
        if isinstance(o, torch.Tensor):
            found[key] = o
        elif isinstance(o, Mapping):
            for k, v in o.items():
                visit(v, f"{path}.{k}" if path else str(k), depth + 1)
        elif isinstance(o, tuple) and hasattr(o, "_fields"):  # a namedtuple: its field names
            for name in o._fields:
                visit(getattr(o, name), f"{path}.{name}" if path else name, depth + 1)
        elif isinstance(o, (tuple, list)):
            numbers = _numbers(o)
            if numbers is not None:
                found[key] = numbers
                return
            for i, v in enumerate(o):
                visit(v, f"{path}.{i}" if path else str(i), depth + 1)
        elif dataclasses.is_dataclass(o) and not isinstance(o, type):
            for f in dataclasses.fields(o):
                visit(getattr(o, f.name), f"{path}.{f.name}" if path else f.name, depth + 1)
        elif type(o).__module__ == "numpy" and hasattr(o, "dtype") and hasattr(o, "shape"):
            with contextlib.suppress(TypeError, ValueError, RuntimeError):
                found[key] = torch.as_tensor(o)

    visit(obj, prefix, 0)
    return found


def _numbers(seq: tuple[Any, ...] | list[Any]) -> torch.Tensor | None:
    """A (nested) list of plain numbers as one tensor; None for anything else or a ragged list."""
    if not seq:
        return None
    first = seq[0]
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    if not isinstance(first, (int, float)) or isinstance(first, bool):
        return None
    try:
        return torch.tensor(seq)
    except (TypeError, ValueError, RuntimeError):
        return None


def type_names(obj: Any, limit: int = 4) -> list[str]:
    """What a model returned, for a note when no tensor could be taken from it: the type, and
    the types inside a container (`list[str]`, `dict[str, Image]`)."""

    def name(o: Any) -> str:
        return type(o).__qualname__

    if isinstance(obj, Mapping):
        inner = sorted({name(v) for v in list(obj.values())[:limit]})
        return [f"{name(obj)}[{', '.join(inner)}]"] if inner else [name(obj)]
    if isinstance(obj, (list, tuple)):
        inner = sorted({name(v) for v in list(obj)[:limit]})
        return [f"{name(obj)}[{', '.join(inner)}]"] if inner else [name(obj)]
    return [name(obj)]


@dataclasses.dataclass
class Kept:
    """One tensor as kept: whole, or sampled rows with the whole tensor's statistics."""

    tensor: torch.Tensor
    shape: list[int]
    dtype: str
    meta: dict[str, Any] | None = None  # set when sampled

    @property
    def nbytes(self) -> int:
        return self.tensor.numel() * self.tensor.element_size()

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": "", "shape": self.shape, "dtype": self.dtype}
        if self.meta is not None:
            out["sampled"] = {
                "rows": int(self.tensor.shape[0]),
                "rows_of": self.meta["rows_of"],
                "row_stride": self.meta["row_stride"],
            }
        return out


def _plain(t: torch.Tensor) -> torch.Tensor | None:
    """The tensor as a dense, detached, non-quantized tensor; None for what cannot be kept."""
    if t.is_sparse or t.layout != torch.strided:
        return None
    t = t.detach()
    if t.is_quantized:
        t = t.dequantize()
    return t


def row_stride(rows: int, keep: int) -> int:
    """The smallest power-of-two stride that keeps at most `keep` of `rows` rows."""
    stride = 1
    while -(-rows // stride) > keep:
        stride *= 2
    return stride


def summary_stats(t: torch.Tensor) -> dict[str, float]:
    """Statistics of the whole tensor, computed where it lives, without a full-size copy."""
    stats: dict[str, float] = {"min": float(t.min()), "max": float(t.max())}
    if t.is_floating_point() or t.is_complex():
        n = t.numel()
        mean = float(t.sum(dtype=torch.float64) / n) if not t.is_complex() else float("nan")
        norm = float(torch.linalg.vector_norm(t, dtype=torch.float64))
        stats.update(mean=mean, l2_norm=norm, std=max(norm * norm / n - mean * mean, 0.0) ** 0.5)
    else:
        stats["mean"] = float(t.sum(dtype=torch.float64) / t.numel())
    return stats


def keep_tensor(t: torch.Tensor, share: int) -> Kept | None:
    """A CPU copy of t when it fits in `share` bytes, else its sampled rows (None: no room)."""
    plain = _plain(t)
    if plain is None:
        return None
    shape = list(plain.shape)
    dtype = str(plain.dtype).replace("torch.", "")
    nbytes = plain.numel() * plain.element_size()
    if nbytes <= share:
        return Kept(plain.to("cpu", copy=True).clone(), shape, dtype)
    last = shape[-1] if shape else 1
    if plain.numel() == 0 or last == 0:
        return None
    rows_of = plain.numel() // last
    keep = share // max(last * plain.element_size(), 1)
    if keep < 1:
        return None
    stride = row_stride(rows_of, keep)
    rows = plain.reshape(rows_of, last)[::stride].to("cpu", copy=True).clone()
    meta = {"shape": shape, "rows_of": rows_of, "row_stride": stride, "stats": summary_stats(plain)}
    return Kept(rows, shape, dtype, meta)


def keep_within(tensors: dict[str, torch.Tensor], budget: int) -> dict[str, Kept]:
    """Keep tensors in `budget` bytes: the small ones whole, the largest sharing the rest evenly."""
    kept: dict[str, Kept] = {}
    order = sorted(tensors, key=lambda k: tensors[k].numel() * tensors[k].element_size())
    left = max(budget, 0)
    for i, name in enumerate(order):
        share = left // (len(order) - i)
        k = keep_tensor(tensors[name], share)
        if k is not None:
            kept[name] = k
            left -= k.nbytes
    return kept


def aligned_rows(
    a: torch.Tensor, a_meta: dict[str, Any] | None, b: torch.Tensor, b_meta: dict[str, Any] | None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Two captures of one tensor as [rows, last] on the rows both kept (None: shapes differ).

    A whole tensor is its rows at stride 1; with power-of-two strides the coarser run's rows are
    all in the finer one's, so both are cut down to the coarser stride.
    """
    shape_a = a_meta["shape"] if a_meta else list(a.shape)
    shape_b = b_meta["shape"] if b_meta else list(b.shape)
    if shape_a != shape_b:
        return None
    last = shape_a[-1] if shape_a else 1
    rows_of = a.numel() // max(last, 1) if a_meta is None else a_meta["rows_of"]
    sa = a_meta["row_stride"] if a_meta else 1
    sb = b_meta["row_stride"] if b_meta else 1
    stride = max(sa, sb)
    ra = a.reshape(-1, last)[:: stride // sa]
    rb = b.reshape(-1, last)[:: stride // sb]
    n = min(len(ra), len(rb), -(-rows_of // stride))
    return ra[:n], rb[:n]


class OutputCapture:
    """Keeps the first N steps of each root module within the budget (see the module docstring).

    At a step end only the kept rows are copied to the CPU; files are written by flush() (after
    the traced window, or at the end), so that serialising never lands inside a traced step.
    Thread-safe: concurrent calls of the model each offer their step.
    """

    def __init__(self, paths: RunPaths, steps: int, budget: CaptureBudget | None = None) -> None:
        self.paths = paths
        self.steps = steps
        self.budget = budget or CaptureBudget()
        self.device_types: set[str] = set()
        self.used_bytes = 0
        self.errors: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._pending: list[tuple[int, int, dict[str, Kept], dict[str, Kept]]] = []
        self._written: dict[tuple[int, int], dict[str, Any]] = {}
        self._types: dict[tuple[int, int], list[str]] = {}  # steps whose output held no tensor

    @property
    def pending(self) -> bool:
        """Whether copies wait to be written."""
        return bool(self._pending)

    def wants(self, step: int) -> bool:
        return step < self.steps and self.used_bytes < self.budget.run_bytes

    def save(self, root: int, step: int, output: Any, inputs: Any = None) -> None:
        """Keep this step's tensors within the budget; problems are recorded, never raised."""
        out = flatten_tensors(output)
        inp: dict[str, torch.Tensor] = {}
        if inputs is not None:
            args, kwargs = inputs
            inp.update(flatten_tensors(args, "args"))
            inp.update(flatten_tensors(kwargs or {}, "kwargs"))
        with self._lock:
            if not out and len(self._types) < self.steps:
                # nothing to compare: the index says what the model returned instead
                self._types[(root, step)] = type_names(output)
            self.device_types.update(t.device.type for t in out.values())
            room = min(self.budget.step_bytes, self.budget.run_bytes - self.used_bytes)
            if room <= 0 or not out:
                return
            try:
                kept_out = keep_within(out, room)
                used = sum(k.nbytes for k in kept_out.values())
                kept_in = keep_within(inp, room - used)
                used += sum(k.nbytes for k in kept_in.values())
            except Exception as e:  # an exotic tensor subclass must not break the user's run
                self.errors.append({"root": root, "step": step, "error": repr(e)})
                return
            self.used_bytes += used
            self._pending.append((root, step, kept_out, kept_in))

    def flush(self) -> None:
        """Write the pending copies under outputs/roots/<root>/."""
        with self._lock:
            pending, self._pending = self._pending, []
        for root, step, out, inp in pending:
            self._write(root, step, out, inp)

    def _write(self, root: int, step: int, out: dict[str, Kept], inp: dict[str, Kept]) -> None:
        path = self.paths.output_root_step(root, step)
        doc = {
            "output": {k: v.tensor for k, v in out.items()},
            "input": {k: v.tensor for k, v in inp.items()},
            "sampled": {
                "output": {k: v.meta for k, v in out.items() if v.meta is not None},
                "input": {k: v.meta for k, v in inp.items() if v.meta is not None},
            },
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(doc, path)
        except Exception as e:
            self.errors.append({"root": root, "step": step, "error": repr(e)})
            return
        self._written[(root, step)] = {
            "bytes": sum(k.nbytes for k in (*out.values(), *inp.values())),
            "tensors": _specs(out.items()),
            "inputs": _specs(inp.items()),
        }

    def finish(self, model_root: int | None) -> dict[str, Any]:
        """Move the model's captures to outputs/step-NNNN.pt, write the index, drop the rest.

        Returns what child.json says about the capture: steps kept, bytes, what was sampled.
        """
        self.flush()
        index: list[dict[str, Any]] = []
        for (root, step), entry in sorted(self._written.items()):
            if root != model_root:
                continue
            src = self.paths.output_root_step(root, step)
            try:
                src.replace(self.paths.output_step(step))
            except OSError as e:
                index.append({"step": step, "file": None, "error": repr(e)})
                continue
            index.append({"step": step, "file": output_step_name(step), **entry})
        index += [
            {"step": e["step"], "file": None, "error": e["error"]}
            for e in self.errors
            if e["root"] == model_root
        ]
        index += [
            {"step": step, "file": None, "output_types": types}
            for (root, step), types in sorted(self._types.items())
            if root == model_root
        ]
        shutil.rmtree(self.paths.output_roots_dir, ignore_errors=True)
        index.sort(key=lambda e: e["step"])
        self.paths.outputs_index.write_text(json.dumps(index, indent=1), encoding="utf-8")
        sampled = [
            {"step": e["step"], "kind": kind, **spec}
            for e in index
            for kind in ("tensors", "inputs")
            for spec in e.get(kind, [])
            if "sampled" in spec
        ]
        return {
            "steps": [e["step"] for e in index if e.get("file")],
            "bytes": sum(e.get("bytes", 0) for e in index),
            "step_bytes_cap": self.budget.step_bytes,
            "run_bytes_cap": self.budget.run_bytes,
            "sampled": sampled[:50],
        }


def _specs(items: Iterable[tuple[str, Kept]]) -> list[dict[str, Any]]:
    out = []
    for name, kept in items:
        spec = kept.spec()
        spec["name"] = name
        out.append(spec)
    return out
