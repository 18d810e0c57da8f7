"""train-mode-in-inference: modules left in training mode while the script runs inference.

Detects
    Inference steps where modules under the root are in training mode (model.eval() never
    called). Dropout then zeroes random activations (outputs change from call to call) and
    batch-norm normalises with the batch's own statistics and overwrites its running stats
    (outputs depend on the batch, and the model's state drifts).
Signal
    steps.parquet `training_modules` (modules in training mode under the root, per step);
    which of them change behaviour: child.json `training_module_classes` (class -> count), and in
    the trace, aten::dropout / feature_dropout / alpha_dropout called with train=True or their
    random masks (aten::bernoulli_, aten::native_dropout) and aten::batch_norm with training=True
    ("Concrete Inputs", record_shapes). Backward ops in the window mean a training loop: skipped.
Thresholds
    TRAIN_STEP_SHARE = 0.5: at least half the module steps had modules in training mode.
    Severity is set by what the modules do, because the damage is to the outputs, not only time:
    high for batch-norm in training mode (batch-dependent outputs and running stats overwritten),
    medium for active dropout (random outputs), low when the training-mode modules behave the
    same in eval (Linear, ReLU, ...). The fix (eval-mode) is exact.
    impact = time of dropout and batch-norm ops over the trace window, floored at MIN_IMPACT
    (0.02) when behaviour changes but the trace cannot time it.
Evidence
    share of steps with modules in training mode, count and classes of behaviour-changing
    modules, time of the dropout / batch-norm ops, the first module names.
False positives
    A script that trains (backward in the window) is not flagged. Modules whose training flag
    changes nothing give only a low finding.
References
    PyTorch docs, nn.Module.eval ("This has an effect only on certain modules ... Dropout,
    BatchNorm"); PyTorch Performance Tuning Guide.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import orjson
import pandas as pd

from dsprof.analyzers import cpu_facts
from dsprof.core.findings import Evidence, Finding, Severity

if TYPE_CHECKING:
    from dsprof.store.run_store import RunData
    from dsprof.trace import TraceFrames

TRAIN_STEP_SHARE = 0.5
MIN_IMPACT = 0.02
RECIPES = ["eval-mode"]
DROPOUT_CLASS_RE = re.compile(r"Dropout", re.IGNORECASE)
NORM_CLASS_RE = re.compile(r"BatchNorm|InstanceNorm|SyncBatchNorm")
_DROPOUT_OPS = (
    "aten::dropout",
    "aten::feature_dropout",
    "aten::alpha_dropout",
    "aten::feature_alpha_dropout",
)
_DROPOUT_MASK_OPS = ("aten::bernoulli_", "aten::native_dropout")
# index of the `train` / `training` argument in "Concrete Inputs"
_DROPOUT_TRAIN_ARG = 2
_BATCH_NORM_TRAIN_ARG = 5


class TrainModeInInferenceAnalyzer:
    """Modules in training mode during inference steps (see the module docstring)."""

    name: ClassVar[str] = "train-mode-in-inference"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("steps",)

    def analyze(self, run: RunData) -> list[Finding]:
        """One finding when most inference steps ran with modules in training mode."""
        steps = cpu_facts.model_steps(run)
        if len(steps) == 0 or "training_modules" not in steps:
            return []
        share = float((steps["training_modules"] > 0).mean())
        if share < TRAIN_STEP_SHARE:
            return []
        traces = cpu_facts.run_traces(run)
        if cpu_facts.ran_backward(traces):
            return []
        classes = run.child.training_module_classes
        dropout_n = sum(n for c, n in classes.items() if DROPOUT_CLASS_RE.search(c))
        norm_n = sum(n for c, n in classes.items() if NORM_CLASS_RE.search(c))
        op_ns, dropout_ops, norm_ops = _train_ops(traces)
        severity: Severity
        if norm_n or norm_ops:
            severity, what = (
                "high",
                "batch-norm uses batch statistics and overwrites its running stats",
            )
        elif dropout_n or dropout_ops:
            severity, what = "medium", "dropout zeroes random activations"
        else:
            severity, what = "low", "no dropout or batch-norm among them, so outputs are unaffected"
        window = cpu_facts.window_ns(traces) if traces else 0
        impact = op_ns / window if window else 0.0
        if severity != "low":
            impact = max(impact, MIN_IMPACT)
        n_modules = int(steps["training_modules"].max())
        names = run.child.training_modules or []
        evidence = [
            Evidence(
                metric="steps_with_training_modules",
                value=round(share, 4),
                unit="of steps",
                threshold=TRAIN_STEP_SHARE,
                window=f"{len(steps)} module steps",
                source="steps.parquet training_modules",
            ),
            Evidence(metric="modules_in_training_mode", value=n_modules, source="steps.parquet"),
        ]
        if classes:
            evidence.append(
                Evidence(
                    metric="behaviour_changing_modules",
                    value=dropout_n + norm_n,
                    source="child.json training_module_classes",
                )
            )
        if traces:
            label = cpu_facts.window_label(traces)
            evidence.append(
                Evidence(
                    metric="train_mode_op_calls",
                    value=dropout_ops + norm_ops,
                    window=label,
                    source="trace cpu_ops (dropout, batch_norm)",
                )
            )
            evidence.append(
                Evidence(
                    metric="train_mode_op_time",
                    value=round(op_ns / 1e6, 3),
                    unit="ms",
                    window=label,
                    source="trace cpu_ops",
                )
            )
        if names:
            evidence.append(
                Evidence(
                    metric="first_modules",
                    value=", ".join(names[:5]),
                    source="child.json training_modules",
                )
            )
        title = (
            f"{n_modules} modules left in training mode during inference: {what}; call model.eval()"
        )
        return [cpu_facts.cpu_finding(self.name, severity, title, impact, evidence, RECIPES)]


def _flag(concrete: object, index: int) -> bool | None:
    """A boolean argument from "Concrete Inputs" JSON text; None when not recorded."""
    if not isinstance(concrete, str) or not concrete:
        return None
    values = orjson.loads(concrete)
    if not isinstance(values, list) or len(values) <= index:
        return None
    return {"True": True, "False": False}.get(values[index])


def _recorded(ops: pd.DataFrame) -> bool:
    """True when the ops carry "Concrete Inputs" (record_shapes was on)."""
    return "concrete_inputs" in ops and bool((ops["concrete_inputs"].astype(object) != "").any())


def _flags(ops: pd.DataFrame, index: int) -> pd.Series:
    """Boolean mask: the flag argument at `index` is True; parsed once per unique argument text."""
    texts = ops["concrete_inputs"].astype(object)
    parsed = {t: _flag(t, index) for t in texts.unique()}
    return texts.map(parsed).eq(True)


def _train_ops(traces: list[TraceFrames]) -> tuple[int, int, int]:
    """(time in train-mode dropout and batch-norm ops, dropout calls, batch-norm calls)."""
    op_ns = dropout_n = norm_n = 0
    for tf in traces:
        ops = tf.in_window(tf.cpu_ops)
        names = ops["name"].astype(str)
        drop = ops[names.isin(_DROPOUT_OPS)]
        norm = ops[names == "aten::batch_norm"]
        if _recorded(drop) or _recorded(norm):
            drop = drop[_flags(drop, _DROPOUT_TRAIN_ARG)]
            norm = norm[_flags(norm, _BATCH_NORM_TRAIN_ARG)]
        else:
            # no arguments recorded: dropout draws a mask only in training; batch-norm cannot tell
            drop = ops[names.isin(_DROPOUT_MASK_OPS)]
            norm = norm.iloc[0:0]
        op_ns += int(drop["dur_ns"].sum()) + int(norm["dur_ns"].sum())
        dropout_n += len(drop)
        norm_n += len(norm)
    return op_ns, dropout_n, norm_n
