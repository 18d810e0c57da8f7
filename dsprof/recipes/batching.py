"""batching: serve requests in batches (a batch-size sweep and a DynamicBatcher under load).

Addresses: small-batch (throughput left on the table at batch 1), idle-sm, memory-bandwidth-bound
    (a weight-bound GEMM at batch 1 reads every weight per row: batching raises its intensity),
    communication-bound (fewer, larger collectives amortise their latency), host-sync (a sync
    or read-back per call is paid once per batch).
Change: none to the step loop. At the root module's second call (the first after warm-up), its
    inputs are replicated into batches of 1, 2, 4, ... (until memory or the latency limit) and
    timed; then a simulated Poisson stream of single requests (priority classes real-time, batch,
    background) is served one at a time, through a FIFO `dsprof.serving.DynamicBatcher` and through
    one with priority classes, all measured at the same offered load. Results go to batching.json in the trial's run folder. Its code change wraps the
    model in the batcher: a serving-architecture change that needs dsprof.serving at run time, so
    it is printed for the user, not written into the script.
    Never for stateful calls: a model whose calls carry state from one to the next (generate()'s
    decode steps with their KV cache, a `past_key_values` or cache argument) is not a request
    to replay: replaying decode steps against the live cache changes the script's own output
    (issue 17). The baseline's facts refuse it before a trial; the trial's hook checks the call's
    arguments again and measures nothing when they hold state.
Risks: batching raises per-request latency for throughput; outputs of a batched call may differ
    from single calls in the last bits (other GEMM blocking), checked with the drift metrics.
Verification: throughput of the best batch size against batch 1 (bootstrap interval over calls),
    row 0 of the batched output against the single-call output, and the stream's throughput and
    p50/p99 per class against one-at-a-time serving.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dsprof.recipes.base import CodeChange, Recipe, Undo, finding_categories, no_undo, note_change
from dsprof.store.layout import BATCHING_RESULT

# requests arrive at this multiple of one-at-a-time capacity: well above 1, so that server
# saturates and the batcher's extra capacity shows in the stream (a choice of this module)
DEFAULT_RATE_FACTOR = 3.0
DEFAULT_STREAM_REQUESTS = 48
DEFAULT_MAX_WAIT_MS = 10.0
# argument names that carry state between a model's calls (transformers' KV caches and their
# positions, Transformer-XL's mems, an RNN's hx): such calls are never replayed
STATE_PARTS = ("past", "cache")
STATE_NAMES = ("mems", "hx", "state", "states")


def _state_name(name: str) -> bool:
    leaf = name.lower().rsplit(".", 1)[-1]
    parts = name.lower().split(".")
    return leaf in STATE_NAMES or any(k in p for p in parts for k in STATE_PARTS)


def stateful_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """What in a call's arguments carries state from call to call ('' when nothing does)."""
    for name, value in kwargs.items():
        if value is None or isinstance(value, bool):
            continue
        if _state_name(name):
            return f"argument {name} ({type(value).__name__})"
    for value in [*args, *kwargs.values()]:
        if "cache" in type(value).__name__.lower():
            return f"a {type(value).__name__} argument"
    return ""


def stateful_run(run: Any) -> str:
    """Why the baseline's model calls carry state ('' when nothing says so)."""
    seen = run.child.model_seen(run.facts.main_module)
    if run.child.generate_calls or (seen is not None and seen.decode):
        return (
            f"the model runs inside generate() ({run.child.generate_calls} calls): its calls are "
            "decode steps that carry a KV cache from one to the next"
        )
    for specs in run.child.root_inputs.values():
        for spec in specs:
            if _state_name(spec.name.removeprefix("kwargs.")):
                return f"the model is called with {spec.name}, state carried between calls"
    return ""


def measure_batching(
    module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
) -> dict[str, Any]:
    """Sweep, drift of batched rows, and the simulated stream for one model and example input."""
    import torch

    from dsprof.runner.capture import flatten_tensors
    from dsprof.serving.batcher import batch_size_of
    from dsprof.serving.simulate import batch_of, batch_size_sweep, simulate_stream

    if batch_size_of(args, kwargs) != 1:
        example_args, example_kwargs = _first_row(args, kwargs)
    else:
        example_args, example_kwargs = args, kwargs
    example = (example_args, example_kwargs)
    with torch.inference_mode():
        sweep = batch_size_sweep(module, example, repeats=int(options.get("repeats", 5)))
        ok = [r for r in sweep if "p50_ms" in r]
        best = max(ok, key=lambda r: r["throughput_per_s"] or 0)
        single = flatten_tensors(module(*example_args, **example_kwargs))
        bargs, bkwargs = batch_of(example, best["batch_size"])
        batched = flatten_tensors(module(*bargs, **bkwargs))
        rows = {k: (single[k], batched[k][:1]) for k in single if k in batched and batched[k].dim()}
        drift = {
            k: {
                "max_abs": float((a.double() - b.double()).abs().max()),
                "cosine": float(
                    torch.nn.functional.cosine_similarity(
                        a.double().flatten(), b.double().flatten(), dim=0, eps=1e-30
                    )
                ),
            }
            for k, (a, b) in rows.items()
            if a.shape == b.shape and a.is_floating_point()
        }
        rate = (
            DEFAULT_RATE_FACTOR * ok[0]["throughput_per_s"] * float(options.get("rate_factor", 1.0))
        )
        n = int(options.get("requests", DEFAULT_STREAM_REQUESTS))
        wait = float(options.get("max_wait_ms", DEFAULT_MAX_WAIT_MS))
        # the batcher calls the model from its own thread, where this thread's inference_mode
        # does not hold (grad mode is thread-local): give that thread the same mode

        def infer(*a: Any, **k: Any) -> Any:
            with torch.inference_mode():
                return module(*a, **k)

        # a plain server is one-at-a-time in arrival order; dynamic batching both plain (FIFO)
        # and with priority classes, at the same offered load
        one = simulate_stream(
            infer,
            example,
            rate_per_s=rate,
            requests=n,
            max_batch_size=1,
            max_wait_ms=0,
            policy="fifo",
        )
        streams = {
            policy: simulate_stream(
                infer,
                example,
                rate_per_s=rate,
                requests=n,
                max_batch_size=best["batch_size"],
                max_wait_ms=wait,
                policy=policy,
            )
            for policy in ("fifo", "priority")
        }
    return {
        "sweep": sweep,
        "best_batch_size": best["batch_size"],
        "drift": drift,
        "stream": {
            "one_at_a_time": one,
            "fifo_batcher": streams["fifo"],
            "dynamic_batcher": streams["priority"],
        },
    }


def _first_row(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    import torch

    def row(v: Any) -> Any:
        return v[:1] if isinstance(v, torch.Tensor) and v.dim() > 0 else v

    return tuple(row(a) for a in args), {k: row(v) for k, v in kwargs.items()}


class BatchingRecipe(Recipe):
    """Batch-size sweep and dynamic batching."""

    name = "batching"
    concurrent_calls = False
    risk = "approximate"
    addresses = (
        "small-batch",
        "idle-sm",
        "memory-bandwidth-bound",
        "communication-bound",
        "host-sync",
    )
    order = 95

    def applicable(self, run: Any) -> tuple[bool, str]:
        if not run.facts.root_modules:
            return False, "no nn.Module was called as a step: nothing to batch"
        state = stateful_run(run)
        if state:
            return False, f"{state}; batching never replays stateful calls"
        if "small-batch" in finding_categories(run):
            return True, "small-batch finding: throughput is left on the table"
        return True, "measures throughput against batch size from the step's own inputs"

    def install(self, tracker: Any, options: dict[str, Any], status: dict[str, Any]) -> Undo:
        out = Path(options["out"]) if options.get("out") else None
        at_call = int(options.get("at_call", 2))

        def attach(module: Any) -> None:
            calls = {"n": 0, "busy": False}

            def pre(mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                if calls["busy"]:
                    return
                calls["n"] += 1
                if calls["n"] != at_call:
                    return
                state = stateful_call(args, kwargs)
                if state:  # replaying would run the live cache forward: measure nothing
                    note_change(status, False, f"stateful call: {state}")
                    handle.remove()
                    return
                note_change(status, True)
                calls["busy"] = True
                try:
                    result = measure_batching(mod, args, kwargs, options)
                    status["best_batch_size"] = result["best_batch_size"]
                    if out is not None:
                        out.write_text(json.dumps(result, indent=1), encoding="utf-8")
                finally:
                    calls["busy"] = False
                    handle.remove()

            handle = module.register_forward_pre_hook(pre, with_kwargs=True)

        tracker.first_call_hooks.append(attach)
        return no_undo

    def codemod(self, run: Any = None) -> CodeChange:
        return CodeChange(
            manual=(
                "serve through the dynamic batcher: `from dsprof.serving import DynamicBatcher`; "
                "`served = DynamicBatcher(model, max_batch_size=N, max_wait_ms=10)`; then call "
                '`served(x, priority="real-time" | "batch" | "background")` from request '
                "threads instead of `model(x)` (N: the best batch size of batching.json)"
            )
        )


def batching_verdict(result_file: Path, tolerance: dict[str, float], min_gain: float) -> Any:
    """Verdict of a batching trial from its batching.json (see the module docstring)."""
    import numpy as np

    from dsprof.core.fix import Drift, Verdict
    from dsprof.recipes import verdict as V

    if not result_file.is_file():
        return Verdict(
            accepted=False,
            outcome="failed",
            reason=f"no {BATCHING_RESULT}: the model was called fewer than twice",
        )
    result = json.loads(result_file.read_text(encoding="utf-8"))
    rows = {r["batch_size"]: r for r in result["sweep"] if "latency_ms" in r}
    best = result["best_batch_size"]
    drift = Drift(
        tensors_compared=len(result["drift"]),
        cosine=min((d["cosine"] for d in result["drift"].values()), default=None),
        max_abs=max((d["max_abs"] for d in result["drift"].values()), default=None),
    )
    speed = V.bootstrap_speedup(
        np.asarray(rows[1]["latency_ms"]), np.asarray(rows[best]["latency_ms"]) / best
    )
    v = V.judge("approximate", speed, drift, tolerance=tolerance, min_gain=min_gain)
    one, dyn = result["stream"]["one_at_a_time"], result["stream"]["dynamic_batcher"]
    stream_gain = (dyn["throughput_per_s"] or 0) / (one["throughput_per_s"] or float("inf"))
    if v.accepted and stream_gain < 1 + min_gain:
        # bigger batches are faster per row, yet the stream did not gain: not a win for serving
        v.accepted, v.outcome = False, "no-measurable-change"
    fifo = result["stream"].get("fifo_batcher", dyn)
    per_class = ", ".join(
        f"{c} {one['classes'][c]['p99_ms']:.0f}->{fifo['classes'][c]['p99_ms']:.0f}"
        f"->{dyn['classes'][c]['p99_ms']:.0f} ms"
        for c in dyn["classes"]
        if dyn["classes"][c]["count"] and one["classes"][c]["count"]
    )
    v.reason = (
        f"batch {best} vs 1: {v.reason}; Poisson stream at {dyn['rate_per_s']:.1f} req/s: "
        f"{one['throughput_per_s']:.1f} -> {dyn['throughput_per_s']:.1f} req/s (x{stream_gain:.2f}) with the "
        f"DynamicBatcher (mean batch {dyn['mean_batch']:.1f}); p99 one-at-a-time->FIFO "
        f"batching->priority batching: {per_class}"
    )
    return v
