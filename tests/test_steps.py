"""The step tracker in-process: which calls are steps of which module, on which thread."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import torch.nn.modules.module as nn_module

from dsprof.runner.step_table import busy_ns, calls_overlap, model_steps
from dsprof.runner.steps import StepTracker
from dsprof.store.live_steps import STEP_FIELDS, encode_rows, header, parse_lines


def tracked() -> tuple[StepTracker, list]:
    tracker = StepTracker()
    records: list = []
    tracker.listeners.append(lambda row, out, inp: records.append((row, out, inp)))
    tracker.install()
    return tracker, records


def as_dicts(tracker: StepTracker) -> list[dict]:
    return [dict(zip(STEP_FIELDS, r, strict=True)) for r in tracker.rows]


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


def test_only_outermost_calls_are_steps_and_hooks_are_removed():
    model = mlp()
    other = torch.nn.Linear(2, 2)
    tracker, records = tracked()
    try:
        for _ in range(3):
            y = model(torch.randn(1, 4))
            other(y)
    finally:
        tracker.uninstall()
    rows = as_dicts(tracker)
    assert [r["module"] for r in rows] == ["Sequential", "Linear"] * 3
    # each root numbers its own steps; the model is the one with the most call time
    assert [r["step"] for r in rows if r["module"] == "Sequential"] == [0, 1, 2]
    assert all(r["end_ns"] >= r["start_ns"] for r in rows)
    assert records[0][2][0][0].shape == (1, 4)  # inputs: (args, kwargs)
    model(torch.randn(1, 4))
    assert len(tracker.rows) == 6  # nothing recorded once uninstalled
    assert not nn_module._global_forward_pre_hooks
    assert not model._forward_hooks and not model._forward_pre_hooks


def test_a_root_called_inside_another_root_is_not_a_step():
    inner = torch.nn.Linear(3, 3)

    class Outer(torch.nn.Module):
        def forward(self, x):
            return inner(x) + 1

    outer = Outer()
    tracker, _ = tracked()
    try:
        inner(torch.randn(1, 3))  # inner becomes a root of its own
        outer(torch.randn(1, 3))  # ... and is then called inside outer's step
        inner(torch.randn(1, 3))
    finally:
        tracker.uninstall()
    assert [r["module"] for r in as_dicts(tracker)] == ["Linear", "Outer", "Linear"]


def test_first_call_hooks_run_inside_a_step_and_contexts_wrap_every_call():
    model = torch.nn.Linear(8, 8)
    probe = torch.nn.Linear(8, 8)
    tracker, _ = tracked()
    seen_hook: list = []
    tracker.first_call_hooks.append(lambda m: seen_hook.append(probe(torch.randn(1, 8))))
    tracker.call_contexts.append(lambda m: torch.inference_mode())
    try:
        out = [model(torch.randn(2, 8)) for _ in range(2)]
    finally:
        tracker.uninstall()
    assert len(seen_hook) == 1  # once per root
    rows = as_dicts(tracker)
    assert [r["module"] for r in rows] == ["Linear", "Linear"]  # the probe call was no step
    assert all(not r["autograd_enabled"] for r in rows)  # read inside inference_mode
    assert all(o.is_inference() for o in out)
    assert not torch.is_inference_mode_enabled()


def test_markers_take_over_from_module_calls():
    model = torch.nn.Linear(2, 2)
    tracker, _ = tracked()
    tracker.start_clock()
    try:
        for _ in range(3):
            model(torch.randn(1, 2))
            model(torch.randn(1, 2))
            tracker.mark()
    finally:
        tracker.uninstall()
    steps = model_steps(as_dicts(tracker))
    assert [r["step"] for r in steps] == [0, 1, 2]
    assert {r["source"] for r in steps} == {"marker"}
    assert steps[0]["start_ns"] <= steps[0]["end_ns"] <= steps[1]["start_ns"]


def test_a_preprocessing_module_is_not_the_model():
    class Normalize(torch.nn.Module):
        def forward(self, x):
            return (x - x.mean()) / (x.std() + 1e-5)

    prep = Normalize()
    model = torch.nn.Sequential(*[torch.nn.Linear(256, 256) for _ in range(4)])
    tracker, _ = tracked()
    try:
        with torch.no_grad():
            for _ in range(20):
                model(prep(torch.randn(32, 256)))
    finally:
        tracker.uninstall()
    assert tracker.model is not None and tracker.model.cls == "Sequential"
    steps = model_steps(as_dicts(tracker))
    assert len(steps) == 20 and {r["module"] for r in steps} == {"Sequential"}
    assert [r["step"] for r in steps] == list(range(20))


def test_forward_called_directly_is_one_step_per_call():
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 2)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    net = Net()
    tracker, records = tracked()
    try:
        outs = [net.forward(torch.randn(3, 8)) for _ in range(7)]
    finally:
        tracker.close_groups()
        tracker.uninstall()
    rows = as_dicts(tracker)
    assert len(rows) == 7
    assert {(r["module"], r["source"]) for r in rows} == {("Net", "forward")}
    assert torch.equal(records[-1][1], outs[-1])  # the step's output is the last layer's
    assert all(a["end_ns"] <= b["start_ns"] for a, b in itertools.pairwise(rows))


@pytest.mark.parametrize("kind", ["script", "trace"])
def test_torchscript_models_are_timed_by_their_python_call(kind: str):
    net = mlp().eval()
    tracker, _ = tracked()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = (
                torch.jit.script(net)
                if kind == "script"
                else torch.jit.trace(net, torch.randn(1, 4))
            )
        for _ in range(6):
            model(torch.randn(1, 4))
    finally:
        tracker.uninstall()
    assert tracker.model is not None and tracker.model.source == "script"
    # torch.jit.trace's own runs of net (and of its layers) are not roots
    assert [r.cls for r in tracker.roots] == [type(model).__name__]
    steps = model_steps(as_dicts(tracker))
    assert len(steps) == 6 and {r["source"] for r in steps} == {"script"}
    assert not nn_module._global_forward_hooks


def test_quantize_dynamic_observers_are_not_steps():
    from torch.ao.quantization import quantize_dynamic

    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    tracker, _ = tracked()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qmodel = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        for _ in range(5):
            qmodel(torch.randn(2, 16))
    finally:
        tracker.uninstall()
    assert [r.cls for r in tracker.roots] == ["Sequential"]
    assert len(tracker.rows) == 5


@pytest.mark.parametrize("mode", ["inference_mode", "no_grad"])
def test_calls_from_a_thread_pool_are_each_a_step_with_their_thread(mode: str):
    model = mlp().eval()
    tracker, _ = tracked()
    # the first four calls meet before they run: the pool cannot hand every call to one thread
    # (on a busy machine one quick thread used to take all 120)
    start_together = threading.Barrier(4, timeout=60)

    def call(i: int) -> torch.Tensor:
        if i < 4:
            start_together.wait()
        ctx = torch.inference_mode() if mode == "inference_mode" else torch.no_grad()
        with ctx:
            if i == 5:
                return model(torch.randn(2, 3))  # raises: wrong width
            return model(torch.randn(2, 4))

    failed = 0
    try:
        with ThreadPoolExecutor(4) as pool:
            for fut in [pool.submit(call, i) for i in range(120)]:
                try:
                    fut.result()
                except RuntimeError:
                    failed += 1
    finally:
        tracker.uninstall()
    rows = as_dicts(tracker)
    assert failed == 1 and len(rows) == 119  # every returned call, the raising one not
    assert tracker.roots[0].failed == 1
    assert sorted(r["step"] for r in rows) == list(range(119))
    assert len({r["thread_id"] for r in rows}) > 1
    assert not any(r["autograd_enabled"] for r in rows)
    assert not nn_module._global_forward_pre_hooks and not model._forward_pre_hooks


def test_a_forked_worker_notes_its_first_call_and_leaves_the_parent_alone(tmp_path):
    import multiprocessing as mp

    log = tmp_path / "workers.jsonl"
    model = mlp()
    tracker = StepTracker(worker_log=log)
    tracker.install()
    try:
        model(torch.randn(1, 4))
        ctx = mp.get_context("fork")
        proc = ctx.Process(target=lambda: [model(torch.randn(1, 4)) for _ in range(3)])
        proc.start()
        proc.join(60)
        model(torch.randn(1, 4))
    finally:
        tracker.uninstall()
    assert proc.exitcode == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and '"Sequential"' in lines[0]
    assert len(tracker.rows) == 2  # the worker's calls are not this process's steps


def test_live_rows_round_trip_and_overlap():
    rows = [
        (0, 10, 30, "M", "module", 0, 7, False, True, 0),
        (0, 20, 50, "P", "module", 1, 8, True, False, 0),
    ]
    lines = [*(header() + encode_rows(rows)).decode().splitlines(), '[1, 2, "cut']
    parsed = parse_lines(lines)
    assert [r["duration_ns"] for r in parsed] == [20, 30]
    assert parsed[1]["module"] == "P" and parsed[1]["thread_id"] == 8
    assert busy_ns([10, 20, 100], [30, 50, 110]) == 50
    assert calls_overlap([10, 20], [30, 50]) and not calls_overlap([10, 40], [30, 50])


def test_the_model_of_a_killed_child_is_the_root_with_the_most_time():
    rows = [
        {"step": 0, "start_ns": 0, "end_ns": 5, "root": 0, "module": "A", "source": "module"},
        {"step": 0, "start_ns": 5, "end_ns": 100, "root": 1, "module": "B", "source": "module"},
        {"step": 1, "start_ns": 100, "end_ns": 105, "root": 0, "module": "A", "source": "module"},
    ]
    assert [r["module"] for r in model_steps(rows)] == ["B"]
    assert [r["module"] for r in model_steps(rows, 0)] == ["A", "A"]


def test_threads_left_as_they_were():
    before = threading.active_count()
    tracker, _ = tracked()
    tracker.uninstall()
    assert threading.active_count() == before


def test_modules_built_on_every_call_do_not_pile_up_as_roots():
    from dsprof.runner.step_roots import MAX_ROOTS

    # the model holds most of the work even when one softmax call is slowed down (its first
    # call's lazy set-up, or a busy machine descheduling it): ~50 us a call against ~5 us
    model = torch.nn.Linear(256, 256)
    x = torch.randn(16, 256)
    torch.nn.Softmax(dim=-1)(model(x)[:1, :4])
    tracker, _ = tracked()
    try:
        for _ in range(MAX_ROOTS + 40):
            torch.nn.Softmax(dim=-1)(model(x)[:1, :4])
    finally:
        tracker.uninstall()
    assert len(tracker.roots) == MAX_ROOTS
    assert tracker.model is not None and tracker.model.module is model
    assert tracker.model.steps == MAX_ROOTS + 40


def test_a_root_called_again_takes_no_torch_hook_path_and_is_left_as_it_was():
    seen: list[tuple[int, int, int]] = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            # what torch's call path sees inside a step: every hook table dsprof could fill
            seen.append((
                len(nn_module._global_forward_pre_hooks),
                len(nn_module._global_forward_hooks),
                len(model._forward_hooks) + len(model._forward_pre_hooks),
            ))  # fmt: skip
            return x

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), Probe()).eval()
    tracker, records = tracked()
    try:
        with torch.no_grad():
            for _ in range(5):
                model(torch.randn(1, 4))
    finally:
        tracker.uninstall()
    # the first call is found by the global hook; the later ones enter through the wrapper,
    # which takes the global hook out while the model runs: no hook dispatch in the model
    assert seen[1:] == [(0, 0, 0)] * 4
    assert [r[0][0] for r in records] == [0, 1, 2, 3, 4]
    assert all(r[0][3] == "Sequential" and r[0][4] == "module" for r in records)
    assert "_compiled_call_impl" not in model.__dict__
    assert not nn_module._global_forward_pre_hooks and not model._forward_hooks


def test_a_tracked_model_can_be_copied_saved_and_compiled_by_the_script():
    import copy
    import io

    model = mlp().eval()
    x = torch.randn(1, 4)
    tracker, _ = tracked()
    try:
        for _ in range(2):
            model(x)
        twin = copy.deepcopy(model)  # the copy is a new module: a root of its own
        assert "_compiled_call_impl" not in twin.__dict__
        buf = io.BytesIO()
        torch.save(model, buf)
        buf.seek(0)
        loaded = torch.load(buf, weights_only=False)
        assert torch.equal(loaded(x), model(x))
        # the script compiles the model itself (module.compile replaces dsprof's wrapper):
        # its calls are still steps, timed by hooks from then on
        model.compile(backend="eager")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(3):
                model(x)
        assert model._forward_hooks  # dsprof's post-hook: copying the model still works
        copy.deepcopy(model)
        twin(x)
    finally:
        tracker.uninstall()
    model_rows = [r for r in tracker.rows if r[5] == tracker.roots[0].index]
    assert len(model_rows) == 2 + 1 + 3  # the torch.equal check's call is a step too
    assert [r[0] for r in model_rows] == list(range(6))
    assert not model._forward_hooks and not nn_module._global_forward_pre_hooks


def test_a_root_that_another_root_then_wraps_loses_its_wrapper():
    inner = mlp().eval()
    outer = torch.nn.DataParallel(inner)  # on the CPU it calls inner directly
    tracker, _ = tracked()
    try:
        inner(torch.randn(1, 4))
        assert "_compiled_call_impl" in inner.__dict__
        for _ in range(3):
            outer(torch.randn(1, 4))
    finally:
        tracker.uninstall()
    # DataParallel's replicas copy a module's __dict__: inner must not carry a wrapper there
    assert [r.cls for r in tracker.roots] == ["Sequential", "DataParallel"]
    assert tracker.roots[1].steps == 3
    assert not inner._forward_hooks


def test_trackers_come_and_go_while_a_thread_keeps_calling_the_model():
    """A live service's captures: each installs a tracker and removes it while the service's
    thread is inside the model (through the tracker's call wrapper). The thread never sees an
    error, no tracker's hook is left behind, and every new tracker sees the model's calls."""
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU()).eval()
    stop, errors = threading.Event(), []

    def serve() -> None:
        x = torch.randn(2, 16)
        try:
            with torch.inference_mode():
                while not stop.is_set():
                    model(x)
        except BaseException as e:  # the test's failure: the script's thread died
            errors.append(e)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        for _ in range(12):
            seen: list[str] = []
            tracker = StepTracker()
            tracker.install()
            tracker.start_clock()
            tracker.call_contexts = [
                lambda m, seen=seen: (seen.append(type(m).__name__), contextlib.nullcontext())[1]
            ]
            deadline = time.monotonic() + 30
            while len(seen) < 20 and time.monotonic() < deadline and not errors:
                time.sleep(0.005)
            tracker.uninstall()
            assert not errors, errors
            # (a layer may be taken for a root once: the thread was inside the model at install)
            assert len(seen) >= 20 and max(set(seen), key=seen.count) == "Sequential"
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    assert not nn_module._global_forward_pre_hooks
    assert "_compiled_call_impl" not in model.__dict__ or model._compiled_call_impl is None
