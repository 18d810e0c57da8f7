"""Step detection in the profiled process.

A step is one outermost nn.Module call (a module called while no other module call is on the
stack), unless the script marks steps itself with `dsprof.step()`; from the first marker on,
steps are the intervals between markers. Global module hooks see every module call; a depth
counter keeps the per-call work to an integer increment for all but the outermost call.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from dsprof.runner.frames import user_frame

# the process-wide tracker while dsprof profiles this process; None otherwise
TRACKER: StepTracker | None = None

StepListener = Callable[["StepRecord", Any, Any], None]


@dataclass
class StepRecord:
    """One step as written to metrics/steps.jsonl."""

    step: int
    start_ns: int
    end_ns: int
    module: str
    source: str
    traced: bool = False
    autograd_enabled: bool = True
    training_modules: int = -1

    def as_json_line(self) -> str:
        """as_row() as one JSON line, formatted directly (this runs at every step end)."""
        return (
            f'{{"step": {self.step}, "start_ns": {self.start_ns}, "end_ns": {self.end_ns}, '
            f'"duration_ns": {self.end_ns - self.start_ns}, "module": {json.dumps(self.module)}, '
            f'"source": "{self.source}", "traced": {"true" if self.traced else "false"}, '
            f'"autograd_enabled": {"true" if self.autograd_enabled else "false"}, '
            f'"training_modules": {self.training_modules}}}\n'
        )

    def as_row(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_ns": self.end_ns - self.start_ns,
            "module": self.module,
            "source": self.source,
            "traced": self.traced,
            "autograd_enabled": self.autograd_enabled,
            "training_modules": self.training_modules,
        }


@dataclass
class _RootInfo:
    qualname: str
    cls: str
    calls: int = 0
    params: int = 0
    param_dtypes: list[str] = field(default_factory=list)
    modules: list[torch.nn.Module] = field(default_factory=list)
    call_site: tuple[str, int, str] | None = None
    params_requiring_grad: int = 0
    training_classes: dict[str, int] = field(default_factory=dict)
    inputs: list[dict[str, Any]] | None = None


class StepTracker:
    """Turns outermost module calls (or dsprof.step() markers) into steps.

    Listeners get (record, output, inputs) at each step end: the root module's return value and
    its (args, kwargs); both None for markers. Recipes hook in through `first_call_hooks` (run once per root module
    before its first timed call) and `call_contexts` (entered around every outermost call).
    """

    def __init__(self) -> None:
        self.first_call_hooks: list[Callable[[torch.nn.Module], None]] = []
        self.call_contexts: list[
            Callable[[torch.nn.Module], contextlib.AbstractContextManager[Any]]
        ] = []
        self.listeners: list[StepListener] = []
        self.mode = "module"
        self.step_count = 0
        self.roots: dict[int, _RootInfo] = {}
        self.training_names: list[str] = []
        self.autograd_steps = 0
        self._depth = 0
        self._thread: int | None = None
        self._call_start_ns = 0
        self._call_root: torch.nn.Module | None = None
        self._call_autograd = True
        self._call_training = -1
        self._stack: contextlib.ExitStack | None = None
        self._marker_start_ns: int | None = None
        self._first_call_start_ns: int | None = None
        self._handles: list[Any] = []
        self._pid = os.getpid()
        self._started_by_discover = False
        self._call_module_id = 0

    # -- installation -------------------------------------------------------------------
    def install(self) -> None:
        """Register the global pre-hook that discovers outermost modules.

        Only a global *pre*-hook is installed: it costs next to nothing per module call
        (measured: ~0 us against ~4 us per call for a global pre+post pair), returns at once
        inside a step, and turns a module called at depth 0 into a root with its own instance
        hooks. Steps are timed by those instance hooks on the roots alone.
        """
        from torch.nn.modules import module as nn_module

        self._handles = [nn_module.register_module_forward_pre_hook(self._discover)]

    def uninstall(self) -> None:
        """Remove every hook dsprof added (the process is left as it was)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    # -- module mode ----------------------------------------------------------------------
    def _discover(self, module: torch.nn.Module, args: Any) -> None:
        if self._depth or id(module) in self.roots:
            return
        if os.getpid() != self._pid:  # a forked DataLoader worker: not the profiled process
            return
        if self._thread is not None and threading.get_ident() != self._thread:
            return
        info = self._register_root(module)
        self._handles.append(module.register_forward_pre_hook(self._root_pre))
        self._handles.append(
            module.register_forward_hook(self._root_post, with_kwargs=True, always_call=True)
        )
        # modules a hook calls (quantization observers, a batch-size sweep) are not steps
        self._depth += 1
        try:
            for hook in self.first_call_hooks:
                hook(module)
        finally:
            self._depth -= 1
        # this very call is the root's first step; torch may or may not also run the instance
        # pre-hook just added for this call, so remember that the step has already begun
        self._enter(module, info)
        self._started_by_discover = True
        self._call_module_id = id(module)

    def _root_pre(self, module: torch.nn.Module, args: Any) -> None:
        if self._started_by_discover and id(module) == self._call_module_id and self._depth == 1:
            self._started_by_discover = False
            return
        if self._depth:
            if threading.get_ident() == self._thread:
                self._depth += 1  # a root called inside another root's step: not a step
            return
        if os.getpid() != self._pid:
            return
        self._enter(module, self.roots[id(module)])

    def _enter(self, module: torch.nn.Module, info: _RootInfo) -> None:
        self._depth = 1
        self._thread = threading.get_ident()
        self._started_by_discover = False
        info.calls += 1
        if self.call_contexts:
            stack = contextlib.ExitStack()
            for make in self.call_contexts:
                stack.enter_context(make(module))
            self._stack = stack
        # read after the recipes' contexts (inference_mode, autocast) are entered
        self._call_autograd = torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
        self._call_training = sum(1 for m in info.modules if m.training)
        if self._call_training and not info.training_classes:
            for m in info.modules:
                if m.training:
                    name = type(m).__name__
                    info.training_classes[name] = info.training_classes.get(name, 0) + 1
        if self._call_training and not self.training_names:
            self.training_names = [
                f"{info.qualname}.{n}" if n else info.qualname
                for n, m in module.named_modules()
                if m.training
            ][:50]
        self._call_start_ns = time.time_ns()
        if self._first_call_start_ns is None:
            self._first_call_start_ns = self._call_start_ns

    def _root_post(self, module: torch.nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        self._started_by_discover = False
        if self._depth == 0 or threading.get_ident() != self._thread:
            return
        self._depth -= 1
        if self._depth:
            return
        end_ns = time.time_ns()
        self._thread = None
        if self._stack is not None:
            stack, self._stack = self._stack, None
            stack.close()
        info = self.roots.get(id(module))
        if info is not None and info.inputs is None:
            info.inputs = _tensor_specs(args, kwargs)
        if self.mode != "module":
            return
        record = StepRecord(
            step=self.step_count,
            start_ns=self._call_start_ns,
            end_ns=end_ns,
            module=type(module).__name__,
            source="module",
            autograd_enabled=self._call_autograd,
            training_modules=self._call_training,
        )
        self._emit(record, output, (args, kwargs))

    def _register_root(self, module: torch.nn.Module) -> _RootInfo:
        params = list(module.parameters())
        info = _RootInfo(
            qualname=type(module).__qualname__,
            cls=type(module).__name__,
            params=sum(p.numel() for p in params),
            param_dtypes=sorted({str(p.dtype).replace("torch.", "") for p in params}),
            modules=list(module.modules()),
            call_site=user_frame(sys._getframe(1)),
            params_requiring_grad=sum(1 for p in params if p.requires_grad),
        )
        self.roots[id(module)] = info
        return info

    def roots_info(self) -> list[dict[str, Any]]:
        """The root modules seen, for child.json."""
        return [
            {
                "class": r.cls,
                "qualname": r.qualname,
                "calls": r.calls,
                "params": r.params,
                "param_dtypes": r.param_dtypes,
                "params_requiring_grad": r.params_requiring_grad,
                "training_module_classes": r.training_classes,
                "inputs": r.inputs or [],
                "call_site": (
                    {"file": r.call_site[0], "line": r.call_site[1], "function": r.call_site[2]}
                    if r.call_site
                    else None
                ),
            }
            for r in self.roots.values()
        ]

    # -- marker mode ----------------------------------------------------------------------
    def mark(self) -> None:
        """dsprof.step(): end the current step and start the next."""
        now = time.time_ns()
        if self.mode != "marker":
            # the first marker switches modes; the first marked step began with the first
            # module call if there was one, else when the tracker started
            self.mode = "marker"
            self.step_count = 0
            start = self._first_call_start_ns or self._marker_start_ns or now
        else:
            start = self._marker_start_ns or now
        record = StepRecord(
            step=self.step_count,
            start_ns=start,
            end_ns=now,
            module="",
            source="marker",
            autograd_enabled=torch.is_grad_enabled() and not torch.is_inference_mode_enabled(),
        )
        self._marker_start_ns = now
        self._emit(record, None, None)

    def start_clock(self) -> None:
        """Remember when the profiled code began (start of a first marked step)."""
        self._marker_start_ns = time.time_ns()

    def _emit(self, record: StepRecord, output: Any, inputs: Any) -> None:
        if record.autograd_enabled:
            self.autograd_steps += 1
        self.step_count += 1
        for listener in self.listeners:
            listener(record, output, inputs)


def _tensor_specs(args: Any, kwargs: Any) -> list[dict[str, Any]]:
    from dsprof.runner.capture import flatten_tensors

    found = {**flatten_tensors(args, "args"), **flatten_tensors(kwargs or {}, "kwargs")}
    return [
        {"name": k, "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
        for k, t in found.items()
    ]


def mark_step() -> None:
    """Public `dsprof.step()`: a step boundary when profiling, nothing otherwise."""
    if TRACKER is not None:
        TRACKER.mark()
