"""Step detection in the profiled process: which calls are the model's, on every thread.

A *root* is a module called while no other module call is in progress on the calling thread
(dsprof/runner/step_roots.py). Each completed call of a root is one of its steps, on whatever
thread it ran, so overlapping calls (a thread pool serving the model) are each a step with their
own thread id. The *model* is the root that holds most of the work (summed call time): its steps
are the run's steps; the other roots' calls (a preprocessing module, a tokenizer model) are
counted in child.json. The script can instead mark steps with `dsprof.step()`; from the first
marker on, steps are the intervals between markers.

How a step is timed (its `source`):
  module   the root's own calls: the common case (timed by its wrapper, see below)
  forward  the script calls model.forward(x) (or another module's forward) directly, so the
           model's layers are called at top level: they are grouped by that forward() frame
           into one step of the model, from the first layer's start to the last one's end (the
           step's output is the last layer's)
  script   a module that refuses instance hooks (a TorchScript or frozen module): the Python
           call into it, timed by global hooks (the modules inside it run in C++)
  marker   dsprof.step()

Not steps: calls made while torch.jit traces and those torch's tools make for the script
(torch.jit.trace's check run, quantize_dynamic's observers, DataParallel's replicas), modules
called by recipes' first-call hooks, calls that raise (counted as failed calls of their root),
and modules first called after MAX_ROOTS roots are known. In a forked worker process (multiprocessing, DataLoader
workers) the hooks note the first module call to the run folder and then remove themselves.

Cost per call: a global *pre*-hook discovers roots and begins their first step. From then on a
root's calls enter through a wrapper set as the module's `_compiled_call_impl` (what
Module.__call__ calls instead of its own call path when set; module.compile() sets it too): it
begins the step, takes the global hook out of torch's table while the model runs (put back when
the step ends), so that the root and its layers take torch's hook-free path, and appends the
step's row. A step costs two clock reads, a tuple appended to `rows` and a few tests, and nothing
else unless a listener or a recipe asked for it (bench/overhead_tiny.py measures it; torch's
hook path alone cost about 3 us a call). Hooks time the calls where no wrapper can be set: a
module the script compiled itself, a root later called inside another root (DataParallel's
replicas would copy the wrapper), forward() groups, the first calls of a root. With a TorchScript
root the global hook stays in the table (such a root is entered by it alone).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch.nn.modules import module as nn_module

from dsprof.runner.step_roots import (
    MAX_ROOTS,
    SOURCE_FORWARD,
    SOURCE_MARKER,
    SOURCE_MODULE,
    SOURCE_SCRIPT,
    TRAINING_RECOUNT_CALLS,
    Group,
    Root,
    called_by_torch_tool,
    forward_caller,
    forward_frame,
    is_quantization_helper,
    tensor_specs,
)

# the process-wide tracker while dsprof profiles this process; None otherwise
TRACKER: StepTracker | None = None

# a row of metrics/steps.jsonl, fields as dsprof.store.live_steps.STEP_FIELDS
Row = tuple[int, int, int, str, str, int, int, bool, bool, int]
StepListener = Callable[[Row, Any, Any], None]

# traced_since_ns while nothing is being traced: no start time is at or after it
NOT_TRACING = sys.maxsize

_grad_enabled = torch.is_grad_enabled
_inference_mode = torch.is_inference_mode_enabled
_tracing_state = torch._C._get_tracing_state
_time_ns = time.time_ns
_global_pre_hooks = nn_module._global_forward_pre_hooks


class _ThreadState:
    """One thread's step in progress (a plain object: thread-local attributes cost more)."""

    __slots__ = (
        "autograd",
        "busy",
        "group",
        "member",
        "module",
        "root",
        "stack",
        "start_ns",
        "thread_id",
        "training",
    )

    def __init__(self) -> None:
        self.busy = False  # inside a step (or a first-call hook): module calls are not steps
        self.root: Root | None = None
        self.module: torch.nn.Module | None = None  # whose call is the open step
        self.member = False  # that call is a layer of a forward() group
        self.start_ns = 0
        self.stack: contextlib.ExitStack | None = None
        self.autograd = True
        self.training = -1
        self.group: Group | None = None
        self.thread_id = threading.get_native_id()


# Python threads of this process; a second one makes the tracker take the concurrent path
_ACTIVE_THREADS: dict[Any, Any] | None = getattr(threading, "_active", None)


def _other_threads() -> bool:
    return _ACTIVE_THREADS is None or len(_ACTIVE_THREADS) > 1


_LIVE: weakref.WeakSet[StepTracker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for tracker in list(_LIVE):
        tracker.forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


class StepTracker:
    """Turns model calls (or dsprof.step() markers) into steps; see the module docstring.

    Every step is appended to `rows`; `on_flush_due(end_ns)` is called when a step ends at or
    after `flush_due_ns` (the child writes the rows out then). Listeners get (row, output,
    (args, kwargs)) at every step end, on the thread that ran the call; output and inputs are
    None for markers. Replace the list rather than append to it: a model thread may be iterating
    it.
    `on_model_start(step)` is called as a step of the model begins. Recipes hook in through
    `first_call_hooks` (run once per root before its first timed call, inside a step so their own
    module calls are not steps) and `call_contexts` (entered around every call).

    Threads: a wrapped root's wrapper sees its calls on every thread. For the roots and layers
    timed by hooks, while the process has one Python thread, a step begins in the global hook
    and ends in the root's post-hook (found by identity: a root called inside another's step is
    not a step). Once a second thread exists they also get a pre-hook, which begins the steps
    that start while another thread's step has the global hook out of the table.
    """

    def __init__(self, worker_log: Path | None = None) -> None:
        self.first_call_hooks: list[Callable[[torch.nn.Module], None]] = []
        self.call_contexts: list[
            Callable[[torch.nn.Module], contextlib.AbstractContextManager[Any]]
        ] = []
        self.listeners: list[StepListener] = []
        self.on_model_start: Callable[[int], None] | None = None
        self.on_flush_due: Callable[[int], None] | None = None
        self.flush_due_ns = 0
        self.traced_since_ns = NOT_TRACING
        self.rows: list[Row] = []
        self.mode = "module"
        self.marker_steps = 0
        self.marker_autograd_steps = 0
        self.roots: list[Root] = []
        self.model: Root | None = None  # the root with the most summed call time so far
        self.worker_log = worker_log
        self._by_id: dict[int, Root] = {}
        self._members: dict[int, Root] = {}  # layers of a forward() group -> the group's root
        self._member_hooked: set[int] = set()
        self._hooked: list[tuple[torch.nn.Module, Callable[..., None]]] = []  # for pre-hooks
        # roots timed by a call wrapper: id -> (module, wrapper, whether __dict__ had the key)
        self._wrapped: dict[int, tuple[torch.nn.Module, Callable[..., Any], bool]] = {}
        self._post: dict[int, Any] = {}  # roots' post-hook handles (see _hook_root)
        # root -> the threads (their states' ids) in a call of it begun in torch's hook path
        self._hook_open: dict[int, set[int]] = {}
        self._no_wrap: set[int] = set()  # roots called inside another root: hooks only
        self._script_ids: set[int] = set()
        self._local = threading.local()
        self._register_lock = threading.RLock()
        self._discover_key = -1
        self._discover_hook = self._discover
        self._paused = False
        self._concurrent = False
        self._off = True  # not installed, or in a forked process
        # installed, in module mode, no TorchScript root, no hooked root or layer waiting for a
        # second thread: a wrapped root's call takes the short path (see _wrap)
        self._quiet = False
        self._handles: list[Any] = []
        self._script_handle: Any = None
        self._groups: dict[int, Group] = {}
        self._marker_start_ns: int | None = None
        self._first_call_start_ns: int | None = None
        self._in_fork = False
        self._worker_noted = False

    def __reduce__(self) -> tuple[Any, ...]:
        # a module the script copies or saves carries the hooks (bound to this tracker) with
        # it: in the copy they are bound to a tracker never installed, which ignores them
        return (StepTracker, ())

    def _state(self) -> _ThreadState:
        """This thread's state (made at its first call)."""
        try:
            st: _ThreadState = self._local.st
        except AttributeError:
            st = self._local.st = _ThreadState()
        return st

    # -- installation -------------------------------------------------------------------
    def install(self) -> None:
        """Register the global pre-hook that discovers roots."""
        handle = nn_module.register_module_forward_pre_hook(self._discover)
        self._handles = [handle]
        self._discover_key = handle.id
        self._concurrent = _other_threads()
        self._off = False
        self._settle()
        _LIVE.add(self)

    def uninstall(self) -> None:
        """Remove every hook dsprof added (the process is left as it was)."""
        self._off = True
        self._quiet = False
        self._paused = False
        for h in self._handles:
            h.remove()
        self._handles = []
        for module, wrapper, had_key in self._wrapped.values():
            self._unwrap(module, wrapper, had_key)
        self._wrapped = {}
        self._post = {}
        self._hook_open = {}
        self._hooked = []
        if self._script_handle is not None:
            self._script_handle.remove()
            self._script_handle = None
        _LIVE.discard(self)

    def forked(self) -> None:
        """In a forked child process: its module calls are not this run's steps."""
        self._in_fork = True
        self._off = True
        self._quiet = False

    @property
    def installed(self) -> bool:
        """True from install() until uninstall() (or a fork)."""
        return not self._off

    @property
    def step_count(self) -> int:
        """Steps of the model so far (or markers, once the script marks steps)."""
        if self.mode == "marker":
            return self.marker_steps
        return self.model.steps if self.model is not None else 0

    def is_model_step(self, row: Row) -> bool:
        """True for a step of the model as chosen so far, and for every marker."""
        model = self.model
        return row[4] == SOURCE_MARKER or (model is not None and row[5] == model.index)

    # -- discovery ------------------------------------------------------------------------
    def _discover(self, module: torch.nn.Module, args: Any) -> None:
        st = self._state()
        if st.busy or self._off:
            if self._in_fork:
                self._note_worker_call(module)
            return
        mid = id(module)
        root = self._by_id.get(mid)
        if root is None:
            owner = self._members.get(mid)
            if owner is None:
                owner = self._new_root(module, sys._getframe())
                if owner is None:
                    return
                if mid not in self._members:  # a new root: this call is its first step
                    self._enter(st, owner, module)
                    return
            if _tracing_state() is None:
                self._add_member_hooks(module)
                self._enter_member(st, owner, module, sys._getframe())
            return
        if _tracing_state() is None:
            self._enter(st, root, module)
            if mid not in self._post and mid not in self._script_ids:
                # begun here, not by its wrapper (torch's tools, or a wrapper replaced by
                # module.compile()): its end needs the post-hook
                self._hook_root(root, module)

    def _new_root(self, module: torch.nn.Module, hook_frame: FrameType) -> Root | None:
        if (
            len(self.roots) >= MAX_ROOTS
            or _tracing_state() is not None
            or is_quantization_helper(module)
            or called_by_torch_tool(hook_frame)
        ):
            return None
        with self._register_lock:
            known = self._by_id.get(id(module)) or self._members.get(id(module))
            if known is not None:
                return known
            caller = forward_caller(module, hook_frame)
            if caller is not None:
                owner, code, depth = caller
                root = self._by_id.get(id(owner)) or self._register(owner, hook_frame)
                root.forward_code, root.forward_depth = code, depth
                for m in owner.modules():
                    if m is not owner:
                        self._members.setdefault(id(m), root)
                return root
            return self._register(module, hook_frame)

    def _register(self, module: torch.nn.Module, hook_frame: FrameType) -> Root:
        root = Root.of(len(self.roots), module, hook_frame)
        # a root's wrapper is copied with its __dict__ by DataParallel's replicas: roots that
        # the new one calls keep hooks only (they are no longer called at top level)
        inner = {id(m) for m in root.modules} & self._wrapped.keys()
        for mid in inner - {id(module)}:
            self._unwrap(*self._wrapped.pop(mid))
            self._no_wrap.add(mid)
            self._hook_root(self._by_id[mid], self._by_id[mid].module)
        try:
            if isinstance(module, torch.jit.ScriptModule):
                raise RuntimeError("a ScriptModule takes no instance hooks")
            self._hook_root(root, module)
        except RuntimeError:  # TorchScript, frozen or C++ modules: time the Python call into it
            root.source = SOURCE_SCRIPT
            self._script_ids.add(id(module))
            self._settle()
            if self._script_handle is None:
                # (module, args, output): torch's error path calls global hooks without kwargs
                self._script_handle = nn_module.register_module_forward_hook(
                    self._script_post, always_call=True
                )
        self.roots.append(root)
        self._by_id[id(module)] = root
        st = self._state()
        # modules a hook calls (quantization observers, a batch-size sweep) are not steps
        st.busy = True
        try:
            for hook in self.first_call_hooks:
                hook(module)
        finally:
            st.busy = False
        return root

    def _add_member_hooks(self, module: torch.nn.Module) -> None:
        if id(module) in self._member_hooked:
            return
        with self._register_lock:
            if id(module) in self._member_hooked:
                return
            self._member_hooked.add(id(module))
            self._handles.append(
                module.register_forward_hook(self._member_post, with_kwargs=True, always_call=True)
            )
            self._hooked.append((module, self._member_pre))
            if self._concurrent:
                self._handles.append(module.register_forward_pre_hook(self._member_pre))
            self._settle()

    def _become_concurrent(self) -> None:
        """A second thread exists: give every hooked root and layer a pre-hook of its own."""
        with self._register_lock:
            if self._concurrent:
                return
            for module, hook in self._hooked:
                self._handles.append(module.register_forward_pre_hook(hook))
            self._concurrent = True
            self._settle()

    def _settle(self) -> None:
        self._quiet = (
            not self._off
            and self.mode == "module"
            and not self._script_ids
            and (self._concurrent or not self._hooked)
        )

    # -- how a root's calls are timed: a call wrapper, else hooks ---------------------------
    def _hook_root(self, root: Root, module: torch.nn.Module) -> None:
        """Time root's calls from now on; the call in progress (begun by a pre-hook) ends in
        the post-hook registered here.

        Where torch allows, the root gets a call wrapper (_wrap) and the post-hook stays only
        until the calls begun in torch's hook path have ended (_root_post); else (a module the
        script compiled, one called inside another root) the post-hook stays, with a pre-hook
        for calls that begin while another thread's step has the global hook out of the table.
        """
        mid = id(module)
        with self._register_lock:
            wrapped = self._wrapped.get(mid)
            if wrapped is not None and module.__dict__.get("_compiled_call_impl") is not wrapped[1]:
                del self._wrapped[mid]  # replaced (module.compile()): hooks from now on
                wrapped = None
            if wrapped is None and mid not in self._no_wrap:
                wrapped = self._wrap(root, module)
            if mid not in self._post:
                handle = module.register_forward_hook(
                    self._root_post, with_kwargs=True, always_call=True
                )
                self._post[mid] = handle
                self._handles.append(handle)
            if wrapped is None and all(m is not module for m, _ in self._hooked):
                self._hooked.append((module, self._root_pre))
                if self._concurrent:
                    self._handles.append(module.register_forward_pre_hook(self._root_pre))
                self._settle()

    def _wrap(
        self, root: Root, module: torch.nn.Module
    ) -> tuple[torch.nn.Module, Callable[..., Any], bool] | None:
        """Time root's calls by a function that torch calls in place of its call path.

        Module.__call__ calls `_compiled_call_impl` when set (what module.compile() sets): the
        wrapper begins the step, takes the global hook out of torch's table, and calls the
        module's own _call_impl, which then takes torch's hook-free path (unless the script has
        hooks of its own); so a step costs no hook dispatch at all. Not for a module the script
        compiled (its _compiled_call_impl is taken). The wrapper leaves with uninstall(); a
        pickled or deep-copied module never carries it (Module.__getstate__ drops it).

        The short path below is the common case written out (bench/overhead_tiny.py): the
        tracker quiet (_settle), no recipe context, no trace window or listener waiting, a
        known thread of the model. Anything else goes through _call and _step.
        """
        if module.__dict__.get("_compiled_call_impl") is not None:
            return None
        tracker = self
        local = self._local
        new_state = self._state
        call_impl = module._call_impl
        hooks, key, discover = _global_pre_hooks, self._discover_key, self._discover_hook
        rows = self.rows  # (emptied in place by the child's flushes, never replaced)
        cls, index = root.cls, root.index

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                st = local.st
            except AttributeError:
                st = new_state()
            if (
                st.busy
                or not tracker._quiet
                or tracker.call_contexts
                or tracker.on_model_start is not None
                or _tracing_state() is not None
            ):
                return tracker._call(st, root, module, call_impl, args, kwargs)
            st.busy = True
            autograd = _grad_enabled() and not _inference_mode()
            if module.training is root.training_flag and root.since_count < TRAINING_RECOUNT_CALLS:
                root.since_count += 1
                training = root.training
            else:
                training = root.training_count()
            hooks.pop(key, None)  # torch's hook-free path for the model's layers
            start_ns = _time_ns()
            try:
                output = call_impl(*args, **kwargs)
            except BaseException:
                st.busy = False
                if not tracker._off:
                    hooks[key] = discover
                    if tracker._off:
                        hooks.pop(key, None)
                root.failed += 1
                raise
            end_ns = _time_ns()
            st.busy = False
            if not tracker._off:
                hooks[key] = discover
                if tracker._off:  # uninstall() ran in between: its hook must not come back
                    hooks.pop(key, None)
            thread_id = st.thread_id
            if (
                root is not tracker.model
                or tracker.listeners
                or thread_id not in root.threads
                or (training > 0 and not root.training_list)
            ):
                tracker._step(
                    root, start_ns, end_ns, SOURCE_MODULE, thread_id, autograd, training,
                    output, args, kwargs,
                )  # fmt: skip
                return output
            root.total_ns += end_ns - start_ns
            step = root.steps
            root.steps = step + 1
            if autograd:
                root.autograd_steps += 1
            rows.append((
                step, start_ns, end_ns, cls, SOURCE_MODULE, index, thread_id,
                start_ns >= tracker.traced_since_ns, autograd, training,
            ))  # fmt: skip
            if end_ns >= tracker.flush_due_ns and tracker.on_flush_due is not None:
                tracker.on_flush_due(end_ns)
            return output

        had_key = "_compiled_call_impl" in module.__dict__
        module._compiled_call_impl = call
        wrapped = self._wrapped[id(module)] = (module, call, had_key)
        return wrapped

    def _call(
        self,
        st: _ThreadState,
        root: Root,
        module: torch.nn.Module,
        call_impl: Callable[..., Any],
        args: Any,
        kwargs: Any,
    ) -> Any:
        """A wrapped root's call off the short path: timed as the hooks time it."""
        if st.busy or self._off or _tracing_state() is not None:
            if self._in_fork:
                self._note_worker_call(module)
            return call_impl(*args, **kwargs)
        self._enter(st, root, module)
        try:
            output = call_impl(*args, **kwargs)
        except BaseException:
            self._exit(st, args, kwargs, None)  # a failed call
            raise
        self._exit(st, args, kwargs, output)
        return output

    @staticmethod
    def _unwrap(module: torch.nn.Module, wrapper: Callable[..., Any], had_key: bool) -> None:
        if module.__dict__.get("_compiled_call_impl") is wrapper:
            if had_key:
                module.__dict__["_compiled_call_impl"] = None
            else:
                del module.__dict__["_compiled_call_impl"]

    def _contexts(self, module: torch.nn.Module) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        for make in self.call_contexts:
            stack.enter_context(make(module))
        return stack

    def model_starts(self, root: Root) -> None:
        """A call of the model begins: tell on_model_start (the trace window) its step."""
        if self.on_model_start is not None and self.mode == "module":
            self.on_model_start(root.steps)

    # -- root calls begun in torch's hook path: enter, exit -----------------------------------
    def _root_pre(self, module: torch.nn.Module, args: Any) -> None:
        st = self._state()
        if st.busy or self._off or _tracing_state() is not None:
            return  # (the global hook began this call, or it is inside another step)
        root = self._by_id.get(id(module))
        if root is not None:
            self._enter(st, root, module)

    def _root_post(self, module: torch.nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        try:
            st = self._local.st
        except AttributeError:
            return
        mid = id(module)
        if st.module is module and not st.member:
            self._exit(st, args, kwargs, output)
        if mid in self._wrapped and not self._hook_open.get(mid) and sys.exc_info()[0] is None:
            # the calls begun in the hook path have ended: the wrapper times the rest (not
            # while torch is iterating the hooks for a raised call: it would see them change)
            handle = self._post.pop(mid, None)
            if handle is not None:
                handle.remove()
                if self._hook_open.get(mid):  # one began meanwhile (_discover): keep the hook
                    self._hook_root(self._by_id[mid], module)

    def _script_post(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        try:
            st = self._local.st
        except AttributeError:
            return
        if st.module is module and id(module) in self._script_ids:
            self._exit(st, args, None, output)

    def _enter(self, st: _ThreadState, root: Root, module: torch.nn.Module) -> None:
        if not self._concurrent and _other_threads():
            self._become_concurrent()
        st.busy = True
        st.root = root
        st.module = module
        st.member = False
        self._hook_open.setdefault(id(module), set()).add(id(st))
        if self.call_contexts:
            st.stack = self._contexts(module)
        # read after the recipes' contexts (inference_mode, autocast) are entered
        st.autograd = _grad_enabled() and not _inference_mode()
        st.training = root.training_count()
        if not self._script_ids:  # out of torch's table while the step runs (see the docstring)
            self._paused = True
            _global_pre_hooks.pop(self._discover_key, None)
        if root is self.model:
            self.model_starts(root)
        st.start_ns = start = _time_ns()
        if self._first_call_start_ns is None:
            self._first_call_start_ns = start

    def _end_call(self, st: _ThreadState) -> None:
        st.busy = False
        st.root = None
        st.module = None
        st.member = False
        if st.stack is not None:
            stack, st.stack = st.stack, None
            stack.close()
        if self._paused:
            # another thread's step may still run: its layers then take the hook path and the
            # global hook returns at once for them (correct, only slower for that step)
            self._paused = False
            if not self._off:
                _global_pre_hooks[self._discover_key] = self._discover_hook
                if self._off:  # uninstall() ran in between: its hook must not come back
                    _global_pre_hooks.pop(self._discover_key, None)

    def _exit(self, st: _ThreadState, args: Any, kwargs: Any, output: Any) -> None:
        end_ns = _time_ns()
        root = st.root
        if root is not None:
            # uninstall() may have run while this call was inside a wrapped root (a live
            # capture's tracker leaves while the service's threads keep calling the model)
            opened = self._hook_open.get(id(st.module))
            if opened is not None:
                opened.discard(id(st))
        self._end_call(st)
        if root is None or self._off:
            return
        if output is None and sys.exc_info()[0] is not None:
            root.failed += 1  # the call raised: the script sees its exception, not a step
            return
        self._step(
            root, st.start_ns, end_ns, root.source, st.thread_id, st.autograd, st.training,
            output, args, kwargs,
        )  # fmt: skip

    # -- forward() called directly: a group of layer calls is one step of the owner -----------
    def _member_pre(self, module: torch.nn.Module, args: Any) -> None:
        st = self._state()
        if st.busy or self._off or _tracing_state() is not None:
            return
        root = self._members.get(id(module))
        if root is not None:
            self._enter_member(st, root, module, sys._getframe())

    def _member_post(self, module: torch.nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        try:
            st = self._local.st
        except AttributeError:
            return
        if st.module is not module or not st.member:
            return
        end_ns = _time_ns()
        self._end_call(st)
        group = st.group
        if group is not None:
            group.end_ns = end_ns
            group.layers += 1
            group.output = output
            if group.inputs is None:
                group.inputs = (args, kwargs)

    def _enter_member(
        self, st: _ThreadState, root: Root, module: torch.nn.Module, hook_frame: FrameType
    ) -> bool:
        """Begin a layer call of root's forward() group; False when it is not in one."""
        frame = forward_frame(root, hook_frame)
        if frame is None:
            return False  # a layer called outside its owner's forward(): not a step
        if not self._concurrent and _other_threads():
            self._become_concurrent()
        group = st.group
        if group is None or group.frame is not frame:
            if group is not None:
                self._close_group(st)
            if root is self.model:
                self.model_starts(root)
            group = Group(
                root=root,
                frame=frame,
                start_ns=_time_ns(),
                thread_id=st.thread_id,
                autograd=_grad_enabled() and not _inference_mode(),
                training=root.training_count(),
            )
            st.group = group
            self._groups[threading.get_ident()] = group
            if self._first_call_start_ns is None:
                self._first_call_start_ns = group.start_ns
        st.busy = True
        st.root = root
        st.module = module
        st.member = True
        if self.call_contexts:
            st.stack = self._contexts(module)
        if not self._script_ids:
            self._paused = True
            _global_pre_hooks.pop(self._discover_key, None)
        return True

    def _close_group(self, st: _ThreadState) -> None:
        group, st.group = st.group, None
        self._groups.pop(threading.get_ident(), None)
        if group is not None:
            self._group_step(group)

    def _group_step(self, group: Group) -> None:
        if not group.layers:
            return
        args, kwargs = group.inputs or ((), None)
        self._step(
            group.root, group.start_ns, group.end_ns, SOURCE_FORWARD, group.thread_id,
            group.autograd, group.training, group.output, args, kwargs,
        )  # fmt: skip

    def close_groups(self) -> None:
        """End the open forward() groups (at the end of the run: their last step is complete)."""
        for ident, group in list(self._groups.items()):
            self._groups.pop(ident, None)
            self._group_step(group)

    # -- a completed step ---------------------------------------------------------------------
    def _step(
        self,
        root: Root,
        start_ns: int,
        end_ns: int,
        source: str,
        thread_id: int,
        autograd: bool,
        training: int,
        output: Any,
        args: Any,
        kwargs: Any,
    ) -> None:
        if root.inputs is None:
            root.inputs = tensor_specs(args, kwargs)
        root.total_ns += end_ns - start_ns
        model = self.model
        if model is None or (root is not model and root.total_ns > model.total_ns):
            self.model = model = root
        if self.mode != "module":
            return  # the script marks its steps: module calls only feed the model choice
        step = root.steps
        root.steps = step + 1
        if source not in root.sources:
            root.sources.add(source)
        if thread_id not in root.threads:
            root.threads.add(thread_id)
        if autograd:
            root.autograd_steps += 1
        if training > 0 and not root.training_list:
            root.training_list = root.training_names()
        row: Row = (
            step, start_ns, end_ns, root.cls, source, root.index, thread_id,
            start_ns >= self.traced_since_ns, autograd, training,
        )  # fmt: skip
        self.rows.append(row)
        if end_ns >= self.flush_due_ns and self.on_flush_due is not None:
            self.on_flush_due(end_ns)
        for listener in self.listeners:
            listener(row, output, (args, kwargs))

    # -- worker processes ----------------------------------------------------------------
    def _note_worker_call(self, module: torch.nn.Module) -> None:
        """In a forked process: write the first module call down, then take every hook out."""
        if self._worker_noted:
            return
        self._worker_noted = True
        if self.worker_log is not None:
            row = {
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "module": type(module).__name__,
                "ts_ns": time.time_ns(),
            }
            with contextlib.suppress(OSError), open(self.worker_log, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        self.uninstall()
        self.listeners = []

    # -- marker mode ----------------------------------------------------------------------
    def mark(self) -> None:
        """dsprof.step(): end the current step and start the next."""
        now = _time_ns()
        if self.mode != "marker":
            # the first marker switches modes; the first marked step began with the first
            # module call if there was one, else when the tracker started
            self.mode = "marker"
            self._settle()
            start = self._first_call_start_ns or self._marker_start_ns or now
        else:
            start = self._marker_start_ns or now
        st = self._state()
        autograd = _grad_enabled() and not _inference_mode()
        row: Row = (
            self.marker_steps, start, now, "", SOURCE_MARKER, -1, st.thread_id,
            start >= self.traced_since_ns, autograd, -1,
        )  # fmt: skip
        self.marker_steps += 1
        if autograd:
            self.marker_autograd_steps += 1
        self._marker_start_ns = now
        self.rows.append(row)
        if now >= self.flush_due_ns and self.on_flush_due is not None:
            self.on_flush_due(now)
        for listener in self.listeners:
            listener(row, None, None)

    def start_clock(self) -> None:
        """Remember when the profiled code began (start of a first marked step)."""
        self._marker_start_ns = _time_ns()


def mark_step() -> None:
    """Public `dsprof.step()`: a step boundary when profiling, nothing otherwise."""
    if TRACKER is not None:
        TRACKER.mark()
