"""autograd-in-inference: exact checks on hand-built runs, then real `dsprof run` runs."""

from __future__ import annotations

import pytest
from cpu_synthetic import make_run, op, profiler_steps, steps_frame
from planted_runs import planted_run

from dsprof.analyzers.autograd_in_inference import AutogradInInferenceAnalyzer


def _graph_ops(nodes_per_step: int, steps: int = 2, step_us: float = 2000) -> list[dict]:
    """Ops autograd recorded: distinct sequence numbers, nodes_per_step in each step."""
    events = profiler_steps(step_us, steps)
    for s in range(steps):
        for i in range(nodes_per_step):
            events.append(
                op("aten::mul", s * step_us + 1 + i * 0.5, 0.2, seq=s * nodes_per_step + i)
            )
    return events


@pytest.mark.parametrize(
    ("nodes", "severity", "impact"),
    [(10, "medium", 0.02), (100, "medium", 0.0597), (600, "high", 0.3597)],
    ids=["floored", "medium", "high"],
)
def test_overhead_is_nodes_times_node_cost_over_step_time(tmp_path, nodes, severity, impact):
    run = make_run(
        tmp_path,
        events=_graph_ops(nodes),
        steps=steps_frame([2.0] * 4, autograd=True),
        child_info={"call_site": {"file": "infer.py", "line": 12}},
    )
    (f,) = AutogradInInferenceAnalyzer().analyze(run)
    assert (f.category, f.severity, f.impact, f.confidence) == (
        "autograd-in-inference",
        severity,
        impact,
        1.0,
    )
    ev = {e.metric: e.value for e in f.evidence}
    # the first number was current before the window: 2 * nodes - 1 created over 2 steps
    assert ev["graph_nodes_per_step"] == nodes - 0.5
    assert ev["steps_with_grad_mode"] == 1.0
    assert ev["median_step_time"] == 2.0
    assert f.title.endswith("torch.inference_mode() at infer.py:12")
    assert f.recipes == ["inference-mode"]


@pytest.mark.parametrize("seq", [None, 7], ids=["no-numbers", "one-number"])
def test_no_new_sequence_numbers_means_no_graph(tmp_path, seq):
    events = [
        *profiler_steps(2000, 2),
        op("aten::mul", 10, 5, seq=seq),
        op("aten::mul", 2010, 5, seq=seq),
    ]
    run = make_run(tmp_path, events=events, steps=steps_frame([2.0] * 4, autograd=True))
    assert AutogradInInferenceAnalyzer().analyze(run) == []


@pytest.mark.parametrize(
    ("frozen", "fires"), [(True, False), (False, True)], ids=["frozen", "trainable"]
)
def test_real_torch_profiler_trace_under_grad_mode(tmp_path, frozen, fires):
    torch = pytest.importorskip("torch")
    from torch.profiler import ProfilerActivity, profile, record_function

    model = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    model.eval().requires_grad_(not frozen)
    x = torch.randn(4, 32)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for i in range(3):
            with record_function(f"ProfilerStep#{i}"):
                model(x)
    path = tmp_path / "trace" / "real.pt.trace.json"
    path.parent.mkdir()
    prof.export_chrome_trace(str(path))
    run = make_run(tmp_path, steps=steps_frame([1.0] * 3, autograd=True))
    run.trace_files = [path]
    findings = AutogradInInferenceAnalyzer().analyze(run)
    assert bool(findings) is fires
    if fires:
        # Linear (addmm + t), ReLU, Linear: 3 to 5 nodes per call
        assert 3 <= {e.metric: e.value for e in findings[0].evidence}["graph_nodes_per_step"] <= 5


def test_the_trace_outranks_the_parameter_count(tmp_path):
    # frozen parameters, but an input that requires grad: the trace shows the graph
    info = {"root_modules": [{"params_requiring_grad": 0}]}
    run = make_run(
        tmp_path,
        events=_graph_ops(100),
        steps=steps_frame([2.0] * 4, autograd=True),
        child_info=info,
    )
    (f,) = AutogradInInferenceAnalyzer().analyze(run)
    assert (f.severity, f.impact) == ("medium", 0.0597)


def test_training_loop_is_left_alone(tmp_path):
    events = [*_graph_ops(50), op("autograd::engine::evaluate_function: AddmmBackward0", 1500, 10)]
    run = make_run(tmp_path, events=events, steps=steps_frame([2.0] * 4, autograd=True))
    assert AutogradInInferenceAnalyzer().analyze(run) == []


def test_grad_mode_in_few_steps_is_not_flagged(tmp_path):
    steps = steps_frame([2.0] * 4, autograd=False)
    steps.loc[0, "autograd_enabled"] = True  # one warm-up call under grad
    assert (
        AutogradInInferenceAnalyzer().analyze(
            make_run(tmp_path, events=_graph_ops(50), steps=steps)
        )
        == []
    )


@pytest.mark.parametrize(
    ("roots", "expected"),
    [([{"params_requiring_grad": 0}], None), ([{"params_requiring_grad": 4}], 1.0), ([{}], 0.6)],
    ids=["frozen", "requires-grad", "unknown"],
)
def test_without_trace_child_json_decides(tmp_path, roots, expected):
    info = {"steps_seen": 10, "autograd_enabled_steps": 9, "root_modules": roots}
    findings = AutogradInInferenceAnalyzer().analyze(make_run(tmp_path, child_info=info))
    if expected is None:
        assert findings == []
    else:
        (f,) = findings
        assert (f.severity, f.impact, f.confidence) == ("medium", 0.02, expected)
        assert {e.metric: e.value for e in f.evidence}["steps_with_grad_mode"] == 0.9


@pytest.mark.slow  # one `dsprof run` (~5-30 s), shared per session with test_planted.py
def test_real_run_without_no_grad_fires():
    (f,) = AutogradInInferenceAnalyzer().analyze(planted_run("autograd_in_inference"))
    assert f.severity in ("medium", "high")
    ev = {e.metric: e.value for e in f.evidence}
    assert ev["steps_with_grad_mode"] == 1.0
    # 8 blocks of Linear + LayerNorm + GELU: at least one node per op
    assert ev["graph_nodes_per_step"] >= 24
    assert "autograd_in_inference.py:" in f.title


@pytest.mark.slow  # one `dsprof run` (~5-30 s), shared per session with test_planted.py
def test_real_run_under_inference_mode_is_clean():
    assert AutogradInInferenceAnalyzer().analyze(planted_run("cpu_fp32_linear")) == []
