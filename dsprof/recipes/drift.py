"""Output drift: a trial's captured outputs against the baseline's, judged on what matters.

Tensor by tensor (same step, same flattened name): max abs diff, relative L2 error, mean per-row
cosine similarity over the last dimension, top-1 agreement on class scores only
(`is_class_scores`: a [batch, dim] embedding is not class scores), fp32 allclose. For a
generate() script, the token ids each generate() call returned (outputs/generated.pt):
`token_agreement`, the share of generated positions with the same id. When nothing could be
compared, `output_types` says what the model returned instead of tensors.

Thresholds (module constants):
    ALLCLOSE_RTOL = 1e-4, ALLCLOSE_ATOL = 1e-5   fp32 allclose loosened from torch's 1e-5/1e-8 to
                               admit reordered reductions (another thread count sums differently)
    NOT_LOGITS, CLASS_SCORE_NAMES, CLASSIFIER_CLASSES   which outputs are class scores (names of
                               transformers' ModelOutput fields and task-head classes)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dsprof.core.fix import Drift
from dsprof.store.layout import GENERATED_TOKENS, OUTPUTS_INDEX, output_steps

ALLCLOSE_RTOL = 1e-4
ALLCLOSE_ATOL = 1e-5
# output names that hold embeddings or hidden states, where an argmax means nothing
NOT_LOGITS = ("hidden", "embedding", "pooler", "attention", "past_key_values")
# output names that hold class scores, where the argmax is the prediction
CLASS_SCORE_NAMES = ("logit", "score", "prob", "class")
# root module classes whose unnamed outputs are class scores (transformers' task heads, the
# usual names of classifiers); any other unnamed output is judged by cosine alone (issue 17: a
# [batch, dim] embedding had been judged by top-1 agreement)
CLASSIFIER_CLASSES = (
    "Classifier",
    "Classification",
    "ForCausalLM",
    "LMHeadModel",
    "ForMaskedLM",
    "ForConditionalGeneration",
    "ForMultipleChoice",
)


# -- output drift ---------------------------------------------------------------------------


def _load_steps(outputs_dir: Path) -> dict[int, dict[str, Any]]:
    import torch

    return {
        step: torch.load(p, map_location="cpu", weights_only=True)
        for step, p in output_steps(outputs_dir).items()
    }


def _sampled(captured: dict[str, Any]) -> dict[str, Any]:
    """The sampling record of a captured step's outputs ({} when all were kept whole)."""
    sampled = captured.get("sampled")
    return dict(sampled.get("output") or {}) if isinstance(sampled, dict) else {}


def is_class_scores(name: str, shape: tuple[int, ...], model_class: str | None = None) -> bool:
    """Outputs where top-1 agreement means something: class scores, not embeddings.

    Named as scores (`logits`, `prediction_scores`, `probs`...), or unnamed (a bare tensor or a
    tuple's element) from a model whose class says it classifies (CLASSIFIER_CLASSES). A
    `[batch, dim]` tensor alone proves nothing: sentence embeddings have that shape too.
    """
    if len(shape) == 0 or shape[-1] < 2:
        return False
    lowered = name.lower()
    leaf = lowered.rsplit(".", 1)[-1]
    if any(k in lowered for k in NOT_LOGITS):
        return False
    if any(k in leaf for k in CLASS_SCORE_NAMES):
        return True
    unnamed = all(part.isdigit() for part in lowered.split("."))
    return (
        unnamed and bool(model_class) and any(c in (model_class or "") for c in CLASSIFIER_CLASSES)
    )


def is_logits(name: str, shape: tuple[int, ...]) -> bool:
    """Named class scores (kept for callers from before is_class_scores)."""
    return is_class_scores(name, shape)


def compare_outputs(baseline_dir: Path, trial_dir: Path, model_class: str | None = None) -> Drift:
    """Drift of the trial's captured outputs from the baseline's (steps and names in common),
    and of the token ids generate() returned when the script generates."""
    import torch

    from dsprof.runner.capture import aligned_rows

    base, trial = _load_steps(baseline_dir), _load_steps(trial_dir)
    drift = Drift()
    tokens = token_agreement(baseline_dir, trial_dir)
    if tokens is not None:
        drift.token_agreement, drift.tokens_compared = tokens
    notes: list[str] = []
    cosines: list[float] = []
    agreements: list[float] = []
    for step in sorted(set(base) & set(trial)):
        b_out, t_out = base[step]["output"], trial[step]["output"]
        b_meta, t_meta = _sampled(base[step]), _sampled(trial[step])
        for name in sorted(set(b_out) & set(t_out)):
            a, b = b_out[name], t_out[name]
            full_shape = tuple((b_meta.get(name) or {}).get("shape") or a.shape)
            drift.tensors_compared += 1
            if name in b_meta or name in t_meta:
                # over the capture budget: compared on the rows both runs kept (capture.py)
                pair = aligned_rows(a, b_meta.get(name), b, t_meta.get(name))
                if pair is not None:
                    a, b = pair
            if a.shape != b.shape:
                notes.append(f"step {step} {name}: shape {tuple(a.shape)} -> {tuple(b.shape)}")
                drift.allclose = False
                cosines.append(0.0)
                continue
            if not a.is_floating_point():
                same = bool(torch.equal(a, b))
                drift.allclose = same and drift.allclose is not False
                continue
            a64, b64 = a.double(), b.double()
            diff = (a64 - b64).abs()
            drift.max_abs = max(drift.max_abs or 0.0, float(diff.max()) if diff.numel() else 0.0)
            rel = float(
                torch.linalg.vector_norm(a64 - b64) / torch.linalg.vector_norm(a64).clamp_min(1e-30)
            )
            drift.rel_l2 = max(drift.rel_l2 or 0.0, rel)
            close = bool(
                torch.allclose(b.float(), a.float(), rtol=ALLCLOSE_RTOL, atol=ALLCLOSE_ATOL)
            )
            drift.allclose = close and drift.allclose is not False
            rows_a = a64.reshape(-1, a64.shape[-1]) if a64.dim() else a64.reshape(1, 1)
            rows_b = b64.reshape(-1, b64.shape[-1]) if b64.dim() else b64.reshape(1, 1)
            cosines.append(
                float(
                    torch.nn.functional.cosine_similarity(rows_a, rows_b, dim=-1, eps=1e-30).mean()
                )
            )
            if is_class_scores(name, full_shape, model_class):
                agreements.append(float((rows_a.argmax(-1) == rows_b.argmax(-1)).double().mean()))
    if drift.tensors_compared == 0 and drift.tokens_compared == 0:
        seen = output_types(baseline_dir) or output_types(trial_dir)
        drift.output_types = seen
        notes.append(
            f"the model returned {', '.join(seen)}: no tensor to compare"
            if seen
            else "no captured outputs in common (was capture on and did both runs reach a step?)"
        )
    drift.cosine = min(cosines) if cosines else None
    drift.top1_agreement = min(agreements) if agreements else None
    drift.note = "; ".join(notes[:5])
    return drift


def output_types(outputs_dir: Path) -> list[str]:
    """Types of what the model returned at steps where no tensor could be captured."""
    index = outputs_dir / OUTPUTS_INDEX
    if not index.is_file():
        return []
    try:
        entries = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    seen: list[str] = []
    for e in entries if isinstance(entries, list) else []:
        for t in e.get("output_types", []) if isinstance(e, dict) else []:
            if t not in seen:
                seen.append(str(t))
    return seen


def token_agreement(baseline_dir: Path, trial_dir: Path) -> tuple[float, int] | None:
    """Share of generated token positions with the same id in both runs, and how many positions
    were compared; None when either run made no generate() call.

    Calls are paired in order; a sequence that stopped early (an end-of-sequence token) counts
    its missing positions as different. The prompt's positions are not counted.
    """
    import torch

    a_calls, b_calls = _generated(baseline_dir), _generated(trial_dir)
    if not a_calls or not b_calls:
        return None
    same = total = 0
    for a, b in zip(a_calls, b_calls, strict=False):
        ga, gb = a["sequences"][:, a["prompt_len"] :], b["sequences"][:, b["prompt_len"] :]
        if ga.shape[0] != gb.shape[0]:
            total += ga.numel() or gb.numel()
            continue
        width = max(ga.shape[1], gb.shape[1])
        pa = torch.full((ga.shape[0], width), -1, dtype=torch.long)
        pb = torch.full((gb.shape[0], width), -2, dtype=torch.long)
        pa[:, : ga.shape[1]], pb[:, : gb.shape[1]] = ga, gb
        same += int((pa == pb).sum())
        total += pa.numel()
    return (same / total if total else 1.0), total


def _generated(outputs_dir: Path) -> list[dict[str, Any]]:
    import torch

    path = outputs_dir / GENERATED_TOKENS
    if not path.is_file():
        return []
    doc = torch.load(path, map_location="cpu", weights_only=True)
    return [c for c in doc.get("calls", []) if "sequences" in c]


def outputs_deterministic(outputs_dir: Path) -> bool | None:
    """Whether steps given identical inputs returned identical outputs; None without such steps."""
    import torch

    steps = _load_steps(outputs_dir)
    order = sorted(steps)
    verdicts = []
    for i, s in enumerate(order):
        for t in order[i + 1 :]:
            a, b = steps[s], steps[t]
            if a["input"].keys() != b["input"].keys() or not a["input"]:
                continue
            if all(torch.equal(a["input"][k], b["input"][k]) for k in a["input"]):
                verdicts.append(
                    a["output"].keys() == b["output"].keys()
                    and all(torch.equal(a["output"][k], b["output"][k]) for k in a["output"])
                )
    return all(verdicts) if verdicts else None
