"""Before/after ratios of `dsprof fix` on the examples, all measured in one run of this script.

    python bench/fix_cpu.py                 # the default recipes per example (below)
    python bench/fix_cpu.py --auto          # let each baseline's findings pick the recipes
    python bench/fix_cpu.py --only bert     # one example

For each example: a fix session (baseline, untraced reference, one trial per recipe, greedy
combination of the accepted ones) and a table of speedup of the step-time median with its bootstrap
95 % interval, what the user pays (the whole model loop, one-time costs included, with the calls
after which they are paid back), output drift and the verdict. The numbers are this machine's at this moment: on a
shared machine, other processes' load widens the intervals (the verdicts say so).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# (name, script, args, recipes tried without --auto)
EXAMPLES: tuple[tuple[str, str, list[str], list[str]], ...] = (
    ("bert", "examples/bert_encoder.py", ["--steps", "16"], ["int8-dynamic", "bf16", "compile"]),
    ("cnn", "examples/cnn_dataloader.py", ["--batches", "16"], ["dataloader"]),
    ("gpt2", "examples/gpt2_decode.py", ["--new-tokens", "24"], ["int8-dynamic", "compile"]),
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--auto", action="store_true", help="recipes chosen from the findings")
    p.add_argument("--only", action="append", help="example name (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="runs directory (default: a temp dir)")
    args = p.parse_args()

    from rich.console import Console
    from rich.table import Table

    from dsprof.recipes.session import FixOptions, FixRunner

    console = Console(width=160)  # the table stays whole when piped to a file
    out = args.out or Path(tempfile.mkdtemp(prefix="dsprof-fix-bench-"))
    table = Table(title="dsprof fix on the examples (CPU)")
    for col in (
        "example",
        "trial",
        "p50 ms before",
        "p50 ms after",
        "speedup [95% CI]",
        "whole run (break-even)",
        "drift",
        "verdict",
    ):
        table.add_column(col)
    for name, script, script_args, recipes in EXAMPLES:
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        opts = FixOptions(
            target=str(ROOT / script),
            args=script_args,
            out=out,
            recipes=[] if args.auto else recipes,
        )
        session = FixRunner(opts, lambda ev, label, n=name: console.log(f"{n}: {ev} {label}")).run()
        before = session.baseline.p50_ns
        for t in session.trials:
            v = t.verdict
            d = v.drift if v else None
            drift = "-"
            if d is not None and d.metric == "tokens" and d.token_agreement is not None:
                drift = f"tokens {d.token_agreement:.3f}"
            elif d is not None and d.cosine is not None:
                drift = f"cos {d.cosine:.4f}" + (" exact" if d.allclose else "")
            w = v.whole_run if v else None
            whole = "-"
            if w is not None:
                even = "never" if w.break_even_calls is None else f"{w.break_even_calls:,}"
                whole = f"x{w.speedup:.2f} over {w.calls} ({even})"
            table.add_row(
                name,
                ("+ " if t.combined else "") + "+".join(t.recipes),
                f"{before / 1e6:.1f}" if before else "-",
                f"{t.metrics.p50_ns / 1e6:.1f}" if t.metrics.p50_ns else "-",
                f"x{v.speedup:.2f} [{v.ci95[0]:.2f}, {v.ci95[1]:.2f}]"
                if v and v.ci95 and v.speedup
                else "-",
                whole,
                drift,
                ("accepted" if v and v.accepted else v.outcome if v else t.status),
            )
        console.log(
            f"{name}: accepted {session.accepted or 'none'} in {time.perf_counter() - t0:.0f} s "
            f"({session.baseline_run})"
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
