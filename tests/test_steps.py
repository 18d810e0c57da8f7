"""The step tracker in-process: outermost calls only, hooks and contexts, torch left as it was."""

from __future__ import annotations

import torch
import torch.nn.modules.module as nn_module

from dsprof.runner.steps import StepTracker


def tracked() -> tuple[StepTracker, list]:
    tracker = StepTracker()
    records: list = []
    tracker.listeners.append(lambda rec, out, inp: records.append((rec, out, inp)))
    tracker.install()
    return tracker, records


def test_only_outermost_calls_are_steps_and_hooks_are_removed():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    other = torch.nn.Linear(2, 2)
    tracker, records = tracked()
    try:
        for _ in range(3):
            y = model(torch.randn(1, 4))
            other(y)
    finally:
        tracker.uninstall()
    assert [r.module for r, _, _ in records] == ["Sequential", "Linear"] * 3
    assert [r.step for r, _, _ in records] == list(range(6))
    assert all(r.end_ns >= r.start_ns for r, _, _ in records)
    assert records[0][2][0][0].shape == (1, 4)  # inputs: (args, kwargs)
    model(torch.randn(1, 4))
    assert len(records) == 6  # nothing recorded once uninstalled
    assert not nn_module._global_forward_pre_hooks and not model._forward_hooks


def test_a_root_called_inside_another_root_is_not_a_step():
    inner = torch.nn.Linear(3, 3)

    class Outer(torch.nn.Module):
        def forward(self, x):
            return inner(x) + 1

    outer = Outer()
    tracker, records = tracked()
    try:
        inner(torch.randn(1, 3))  # inner becomes a root of its own
        outer(torch.randn(1, 3))  # ... and is then called inside outer's step
        inner(torch.randn(1, 3))
    finally:
        tracker.uninstall()
    assert [r.module for r, _, _ in records] == ["Linear", "Outer", "Linear"]


def test_first_call_hooks_run_inside_a_step_and_contexts_wrap_every_call():
    model = torch.nn.Linear(8, 8)
    probe = torch.nn.Linear(8, 8)
    tracker, records = tracked()
    seen_hook: list = []
    tracker.first_call_hooks.append(lambda m: seen_hook.append(probe(torch.randn(1, 8))))
    tracker.call_contexts.append(lambda m: torch.inference_mode())
    try:
        out = [model(torch.randn(2, 8)) for _ in range(2)]
    finally:
        tracker.uninstall()
    assert len(seen_hook) == 1  # once per root
    assert [r.module for r, _, _ in records] == [
        "Linear",
        "Linear",
    ]  # the probe call was not a step
    assert all(not r.autograd_enabled for r, _, _ in records)  # read inside inference_mode
    assert all(o.is_inference() for o in out)
    assert not torch.is_inference_mode_enabled()


def test_markers_take_over_from_module_calls():
    model = torch.nn.Linear(2, 2)
    tracker, records = tracked()
    tracker.start_clock()
    try:
        for _ in range(3):
            model(torch.randn(1, 2))
            model(torch.randn(1, 2))
            tracker.mark()
    finally:
        tracker.uninstall()
    markers = [r for r, _, _ in records if r.source == "marker"]
    assert [r.step for r in markers] == [0, 1, 2]
    assert markers[0].start_ns <= markers[0].end_ns <= markers[1].start_ns


def test_json_line_is_the_row():
    import json

    from dsprof.runner.steps import StepRecord

    rec = StepRecord(3, 10, 25, 'Odd"Name</script>', "module", True, False, 2)
    assert json.loads(rec.as_json_line()) == rec.as_row()
