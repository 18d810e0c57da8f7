"""What the step tracker knows about the modules the script calls at top level (its roots).

A root is a module called while no other module call is in progress on the calling thread. This
module holds the per-root record and the tests that decide what becomes a root: calls made for
the script by torch's own tools are not, and a layer called from a forward() that the script
called directly belongs to that forward's module (see dsprof/runner/steps.py).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

import torch

from dsprof.runner.frames import user_frame

SOURCE_MODULE = "module"
SOURCE_FORWARD = "forward"
SOURCE_SCRIPT = "script"
SOURCE_MARKER = "marker"
# a root's training-mode count is redone when root.training flips, else every this many calls
# (a submodule switched to training mode alone is seen within that many steps)
TRAINING_RECOUNT_CALLS = 64
# how far up the stack a module's caller is looked for (forward() called directly)
MAX_CALLER_FRAMES = 64
# roots kept at most: a script that builds a module on every call (nn.Softmax(dim=-1)(x) at top
# level) would otherwise add a root, and keep its module alive, per call
MAX_ROOTS = 256


@dataclass(eq=False)
class Root:
    """A module called at top level, with its steps so far."""

    index: int
    module: torch.nn.Module
    qualname: str
    cls: str
    source: str
    params: int = 0
    param_dtypes: list[str] = field(default_factory=list)
    params_requiring_grad: int = 0
    modules: list[torch.nn.Module] = field(default_factory=list)
    call_site: tuple[str, int, str] | None = None
    training_classes: dict[str, int] = field(default_factory=dict)
    inputs: list[dict[str, Any]] | None = None
    steps: int = 0  # completed calls (also the next step's number)
    failed: int = 0
    total_ns: int = 0
    autograd_steps: int = 0
    sources: set[str] = field(default_factory=set)
    threads: set[int] = field(default_factory=set)
    training_list: list[str] = field(default_factory=list)  # names, at its first training step
    # forward() called directly: the code of that forward and its distance from our hook frame
    forward_code: CodeType | None = None
    forward_depth: int = 0
    training: int = -1
    training_flag: bool | None = None  # root.training at the last count
    since_count: int = 0

    @classmethod
    def of(cls, index: int, module: torch.nn.Module, hook_frame: FrameType) -> Root:
        params = list(module.parameters())
        return cls(
            index=index,
            module=module,
            qualname=type(module).__qualname__,
            cls=type(module).__name__,
            source=SOURCE_MODULE,
            params=sum(p.numel() for p in params),
            param_dtypes=sorted({str(p.dtype).replace("torch.", "") for p in params}),
            modules=list(module.modules()),
            call_site=user_frame(hook_frame),
            params_requiring_grad=sum(1 for p in params if p.requires_grad),
        )

    def training_count(self) -> int:
        """Modules in training mode under this root (recounted when it may have changed)."""
        flag = self.module.training
        self.since_count += 1
        if flag is not self.training_flag or self.since_count >= TRAINING_RECOUNT_CALLS:
            self.training_flag = flag
            self.since_count = 0
            self.training = sum(1 for m in self.modules if m.training)
            if self.training and not self.training_classes:
                for m in self.modules:
                    if m.training:
                        name = type(m).__name__
                        self.training_classes[name] = self.training_classes.get(name, 0) + 1
        return self.training

    def training_names(self) -> list[str]:
        """Qualified names of this root's modules in training mode (first 50)."""
        return [
            f"{self.qualname}.{n}" if n else self.qualname
            for n, m in self.module.named_modules()
            if m.training
        ][:50]

    def info(self) -> dict[str, Any]:
        """This root in child.json."""
        site = self.call_site
        return {
            "index": self.index,
            "class": self.cls,
            "qualname": self.qualname,
            "calls": self.steps,
            "failed_calls": self.failed,
            "total_ns": self.total_ns,
            "sources": sorted(self.sources),
            "threads": len(self.threads),
            "params": self.params,
            "param_dtypes": self.param_dtypes,
            "params_requiring_grad": self.params_requiring_grad,
            "training_module_classes": self.training_classes,
            "inputs": self.inputs or [],
            "call_site": (
                {"file": site[0], "line": site[1], "function": site[2]} if site else None
            ),
        }


@dataclass(eq=False)
class Group:
    """An open step of a model whose forward() the script calls directly (source "forward").

    It holds that forward()'s frame (and so its locals) until the next group on the thread opens
    or the run ends: frames take no weak references, and identity is what groups the layers.
    """

    root: Root
    frame: FrameType
    start_ns: int
    thread_id: int
    end_ns: int = 0
    layers: int = 0
    autograd: bool = True
    training: int = -1
    output: Any = None
    inputs: Any = None


def tracing() -> bool:
    """True while torch.jit.trace runs the module (such calls are not inference)."""
    return torch._C._get_tracing_state() is not None


def is_quantization_helper(module: torch.nn.Module) -> bool:
    """Observers and fake-quantize modules: quantize_dynamic and prepare() call them on weights.

    Looked up in sys.modules, never imported: without torch.ao.quantization loaded there are none.
    """
    for name, cls_name in (
        ("torch.ao.quantization.observer", "ObserverBase"),
        ("torch.ao.quantization.fake_quantize", "FakeQuantizeBase"),
    ):
        mod = sys.modules.get(name)
        base = getattr(mod, cls_name, None) if mod is not None else None
        if base is not None and isinstance(module, base):
            return True
    return False


# torch's own tools that call the script's modules for it: torch.jit.trace runs the module again
# to check the trace; quantize_dynamic and prepare() run observers on the weights;
# DataParallel's parallel_apply calls per-device replicas (new objects every call) on threads
_TORCH_TOOLS = tuple(
    os.path.join(root, *parts) + os.sep
    for root in {os.path.dirname(torch.__file__), os.path.dirname(os.path.realpath(torch.__file__))}
    for parts in (("jit",), ("ao", "quantization"), ("quantization",), ("nn", "parallel"))
)


def called_by_torch_tool(hook_frame: FrameType) -> bool:
    """True when the module call comes, at any depth, from torch.jit, quantization or nn.parallel
    code (a layer of a module that torch.jit.trace's check runs is called from that tool too)."""
    frame = hook_frame.f_back
    for _ in range(MAX_CALLER_FRAMES):
        if frame is None:
            return False
        if frame.f_code.co_filename.startswith(_TORCH_TOOLS):
            return True
        frame = frame.f_back
    return False


def forward_caller(
    module: torch.nn.Module, hook_frame: FrameType
) -> tuple[torch.nn.Module, CodeType, int] | None:
    """The outermost other module whose forward() is on the stack and holds `module`.

    Found when the script calls model.forward(x) itself: the model's layers are then called at
    top level. Returns the owner, its forward's code and the frame's distance from hook_frame.
    """
    found = None
    frame = hook_frame.f_back
    depth = 1
    while frame is not None and depth < MAX_CALLER_FRAMES:
        if frame.f_code.co_name == "forward":
            owner = frame.f_locals.get("self")
            if (
                isinstance(owner, torch.nn.Module)
                and owner is not module
                and any(m is module for m in owner.modules())
            ):
                found = (owner, frame.f_code, depth)
        frame = frame.f_back
        depth += 1
    return found


def forward_frame(root: Root, hook_frame: FrameType) -> FrameType | None:
    """The frame of root's forward() that this layer call comes from (None: not from one)."""
    code = root.forward_code
    frame: FrameType | None = hook_frame
    for _ in range(root.forward_depth):
        frame = frame.f_back if frame is not None else None
    if frame is not None and frame.f_code is code:
        return frame
    frame, found = hook_frame.f_back, None
    for _ in range(MAX_CALLER_FRAMES):
        if frame is None:
            break
        if frame.f_code is code:
            found = frame
        frame = frame.f_back
    return found


def tensor_specs(args: Any, kwargs: Any) -> list[dict[str, Any]]:
    """Name, shape and dtype of the tensors in a call's (args, kwargs)."""
    from dsprof.runner.capture import flatten_tensors

    found = {**flatten_tensors(args, "args"), **flatten_tensors(kwargs or {}, "kwargs")}
    return [
        {"name": k, "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
        for k, t in found.items()
    ]
