"""autograd-in-inference: the model runs with grad mode on, so every op records an autograd graph.

Detects
    Inference steps (outermost module calls) made with torch.is_grad_enabled() and outside
    inference_mode while the model's parameters require grad: autograd builds a graph node per
    differentiable op and keeps its inputs alive for a backward pass that never comes.
Signal
    steps.parquet `autograd_enabled` of the module steps (child.json autograd_enabled_steps /
    steps_seen when the table lacks it); proof that a graph was built: the trace cpu_ops'
    "Sequence number"s (under grad mode every op records the thread's counter, which advances
    once per node autograd creates: distinct values per thread, less one, are the nodes), else
    child.json root_modules[].params_requiring_grad. A trace whose window holds backward ops
    (autograd::engine::evaluate_function, *_backward) is a training loop and is left alone.
Thresholds
    AUTOGRAD_STEP_SHARE = 0.5: at least half the module steps under grad mode (one warm-up call
    under grad does not count). The PyTorch performance tuning guide says inference should run
    under torch.no_grad / inference_mode, and the fix (inference-mode) is exact, so the finding
    is medium whenever it holds, high when the estimated overhead reaches IMPACT_HIGH (0.30).
    Estimated overhead = graph nodes per step * AUTOGRAD_NODE_NS / median step time, with
    AUTOGRAD_NODE_NS = 1200 measured here: an 8-layer 256-wide MLP at batch 1 took 0.158 ms
    under grad and 0.129 ms under inference_mode for 24 nodes (torch 2.13, 2-core AMD EPYC;
    python bench/cpu_overheads.py).
    GEMM-bound models lose less (2 % for a 1024x4096 MLP at batch 64), so the estimate is floored
    at MIN_IMPACT = 0.02, the smallest overhead measured.
Evidence
    share of steps with grad mode on, graph nodes per step, median step time, estimated overhead,
    and the call site of the model in the script.
False positives
    Models frozen with requires_grad_(False) record no graph (one sequence number throughout):
    no finding.
    Training loops (backward in the window): no finding.
References
    PyTorch Performance Tuning Guide, "Disable gradient calculation for validation or inference";
    torch.inference_mode docs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from dsprof.analyzers import cpu_facts
from dsprof.core.findings import Evidence, Finding, Severity

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData
    from dsprof.trace import TraceFrames

AUTOGRAD_STEP_SHARE = 0.5
AUTOGRAD_NODE_NS = 1200
MIN_IMPACT = 0.02
RECIPES = ["inference-mode"]


class AutogradInInferenceAnalyzer:
    """Grad mode on during inference steps (see the module docstring)."""

    name: ClassVar[str] = "autograd-in-inference"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("child_info",)

    def analyze(self, run: RunData) -> list[Finding]:
        """One finding when most inference steps recorded an autograd graph."""
        steps = cpu_facts.model_steps(run)
        if len(steps) and "autograd_enabled" in steps:
            n_steps = len(steps)
            grad_steps = int(steps["autograd_enabled"].sum())
            source = "steps.parquet autograd_enabled"
        else:
            n_steps = run.child.steps_seen
            grad_steps = run.child.autograd_enabled_steps or 0
            source = "child.json autograd_enabled_steps"
        if n_steps == 0 or grad_steps / n_steps < AUTOGRAD_STEP_SHARE:
            return []
        traces = cpu_facts.run_traces(run)
        if cpu_facts.ran_backward(traces):
            return []
        nodes = _graph_nodes_per_step(traces)
        requiring = _params_requiring_grad(run)
        # the trace is the proof when it can tell (inputs may require grad even when no
        # parameter does); otherwise frozen parameters mean no graph, no cost
        if nodes == 0 or (nodes is None and requiring == 0):
            return []
        confidence = 1.0 if nodes is not None or requiring is not None else 0.6
        step_ns = float(steps["duration_ns"].median()) if len(steps) else 0.0
        impact = MIN_IMPACT
        if nodes is not None and step_ns > 0:
            impact = min(max(nodes * AUTOGRAD_NODE_NS / step_ns, MIN_IMPACT), 1.0)
        severity: Severity = "high" if impact >= cpu_facts.IMPACT_HIGH else "medium"
        share = grad_steps / n_steps
        evidence = [
            Evidence(
                metric="steps_with_grad_mode",
                value=round(share, 4),
                unit="of steps",
                threshold=AUTOGRAD_STEP_SHARE,
                window=f"{n_steps} module steps",
                source=source,
            ),
        ]
        if nodes is not None:
            evidence.append(
                Evidence(
                    metric="graph_nodes_per_step",
                    value=round(nodes, 1),
                    window=cpu_facts.window_label(traces),
                    source="trace cpu_ops Sequence number",
                )
            )
        if requiring is not None:
            evidence.append(
                Evidence(
                    metric="params_requiring_grad",
                    value=requiring,
                    source="child.json root_modules",
                )
            )
        if step_ns > 0:
            evidence.append(
                Evidence(
                    metric="median_step_time",
                    value=round(step_ns / 1e6, 3),
                    unit="ms",
                    source="steps.parquet",
                )
            )
        evidence.append(
            Evidence(
                metric="estimated_overhead",
                value=round(impact, 4),
                unit="of step",
                threshold=cpu_facts.IMPACT_HIGH,
                source=f"nodes * {AUTOGRAD_NODE_NS} ns / step (measured cost per node)",
            )
        )
        where = _call_site(run)
        title = (
            f"autograd records a graph in {share:.0%} of inference steps"
            + (f" (~{nodes:.0f} nodes/step)" if nodes else "")
            + f": run the model under torch.inference_mode(){where}"
        )
        return [
            cpu_facts.cpu_finding(
                self.name, severity, title, impact, evidence, RECIPES, confidence=confidence
            )
        ]


def _graph_nodes_per_step(traces: list[TraceFrames]) -> float | None:
    """Autograd nodes created per traced step; None when the traces cannot tell.

    Under grad mode every op records the thread's current sequence number, which advances only
    when autograd creates a node: a frozen model's ops all carry the same number. So the nodes
    created in the window are the distinct numbers per thread, less the one already current.
    """
    total, steps = 0, 0
    for tf in traces:
        ops = tf.cpu_ops
        if "seq" not in ops:
            continue
        recorded = tf.in_window(ops)
        recorded = recorded[recorded["seq"] >= 0]
        if len(recorded):
            per_thread = recorded.groupby("tid", observed=True)["seq"].nunique()
            total += int((per_thread - 1).sum())
        steps += max(len(tf.steps), 1)
    return total / steps if steps else None


def _params_requiring_grad(run: RunData) -> int | None:
    counts = [m.params_requiring_grad for m in run.child.root_modules]
    known = [c for c in counts if isinstance(c, int)]
    return sum(known) if known else None


def _call_site(run: RunData) -> str:
    site = run.child.call_site
    if site is not None and site.file and site.line:
        return f" at {site.file}:{site.line}"
    return ""
