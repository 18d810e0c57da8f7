"""The GPU check: dsprof on a real GPU in one prepared command, every result in one folder.

    python bench/gpu_check.py OUTDIR                    # on the GPU machine (budget 7 minutes)
    python bench/gpu_check.py --rehearse OUTDIR         # the same steps on this CPU, small sizes
    python bench/gpu_check.py --only fix-bert-compile OUTDIR   # a re-run of some steps
    python bench/gpu_check.py --list                    # the steps, their limits and commands

Steps, in order of priority (STEPS below): install the carried wheels and dsprof, versions,
`dsprof env`, `dsprof run` on BERT-base fp32 batch 8 and on the planted fragmentation script,
`dsprof analyze --json` on both, `dsprof fix --json` on the fragmentation script (alloc-conf)
and on BERT-base (fp16, bf16, tf32, sdpa in one session; compile, cuda-graphs in another),
bench/kernels.py and bench/overhead.py --rounds 3. dsprof is called through its command line only.

Each step has its own time limit; the whole check has a budget (--budget, 420 s): a step gets
what is left of it, and one that cannot get its minimum is skipped, saying so. --time-scale
multiplies both (3 under --rehearse). A step that fails
or runs out of time is stopped (SIGINT first, so dsprof keeps what it collected; then SIGKILL
for its process group) and the check goes on. After every step OUTDIR/summary.json and
OUTDIR/summary.md are rewritten with each step's outcome, time and key facts, so a check that is
itself killed still leaves its summary.

OUTDIR layout: summary.json, summary.md, logs/<step>.out|.err, results/<step>.json (JSON the
step printed or wrote), runs/<step>/ (run folders and fix sessions, kept whole).
--bundle DIR packs OUTDIR into at most 8 files of at most 15 MiB for a transfer that limits
files (the device tool): summary.json, summary.md and gpu-check.tar.gz (split into .partNN when
larger), leaving out the largest captured outputs and traces first when over --bundle-mib.

--rehearse runs every step it can on the CPU (small models, few steps) so that the script is known
to work before device time is spent: install becomes a dry run of the wheel folder for CPython 3.12
manylinux (--install makes it real, into this interpreter's environment), kernels compiles every
kernel for sm_90 without a GPU, GPU-only recipes are reported skipped by dsprof fix itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gpu_results import bundle, copy_summaries, facts, write_summary  # bench/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUDGET_S = 420  # the 7 minutes on the GPU machine, install included
STOP_GRACE_S = 10  # after SIGINT, how long a stopped step may take to write what it has
REHEARSAL_TIME_SCALE = 3.0  # --rehearse: limits x3 (measured: 170-286 s in all at load 4-5)
# what the GPU image already has (the device tool's KINDS.md); everything else dsprof depends on
# travels as wheels
IMAGE_HAS = frozenset(
    {"torch", "triton", "numpy", "pandas", "pyarrow", "psutil", "rich", "click", "nvidia-ml-py"}
)


def _carried() -> tuple[str, ...]:
    """dsprof's own dependencies (pyproject.toml) the image lacks, plus jinja2 and setuptools.

    Read from pyproject.toml rather than listed here, so a dependency added later travels too.
    """
    import re

    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = [re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].strip().lower() for d in deps]
    # jinja2 (small) is carried even where the image may have it; setuptools builds dsprof offline
    extra = ["jinja2", "setuptools"]
    return tuple(dict.fromkeys([n for n in names if n not in IMAGE_HAS] + extra))


# wheels the GPU image lacks; bench/gpu_wheels.sh downloads these with their dependencies
CARRIED = _carried()
# on a machine without them, `bench/gpu_wheels.sh --with-transformers` carries these as well
CARRIED_TRANSFORMERS = ("transformers", "tokenizers", "safetensors", "huggingface-hub", "regex")
PLATFORMS = (
    "manylinux2014_x86_64",
    *(f"manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34, 35)),
)
FRAGMENTATION = "tests/planted_gpu/memory_fragmentation.py"
BERT = "examples/bert_encoder.py"


@dataclass
class Context:
    """What steps need to build their command lines: paths, mode, and earlier steps' results."""

    out: Path
    rehearse: bool
    wheels: Path
    install: bool
    python: str = sys.executable
    run_dirs: dict[str, Path] = field(default_factory=dict)

    def dsprof(self, *args: str) -> list[str]:
        return [self.python, "-m", "dsprof", *args]

    def result(self, step: str) -> Path:
        return self.out / "results" / f"{step}.json"

    def runs(self, step: str) -> Path:
        return self.out / "runs" / step


Commands = list[list[str]]
# a step's commands for this context, or a string: why the step does not run here
Build = Callable[[Context], "Commands | str"]


@dataclass(frozen=True)
class Step:
    """One check step: a name, its time limit, the least time worth starting it with, commands."""

    name: str
    limit_s: int
    min_s: int
    build: Build
    what: str
    stdout_json: bool = False  # the step prints JSON: its stdout is results/<name>.json
    own_pip_config: bool = False  # pip sees only its command line (no config files, no PIP_*)


def _bert_args(ctx: Context, steps: int) -> list[str]:
    if ctx.rehearse:  # one tiny layer: the same code paths in seconds
        return ["--device", "cpu", "--batch", "1", "--seq", "16", "--layers", "1", "--steps", "8"]
    return ["--device", "cuda", "--batch", "8", "--steps", str(steps)]


def _frag_args(ctx: Context) -> list[str]:
    if ctx.rehearse:
        return ["--device", "cpu", "--scale", "0.01", "--steps", "10"]
    return ["--device", "cuda", "--steps", "30"]


def _pip(ctx: Context, *args: str) -> list[str]:
    return [ctx.python, "-m", "pip", "install", "--disable-pip-version-check", *args]


def install(ctx: Context) -> Commands | str:
    """pip install from the wheel folder, offline, then dsprof itself without dependencies."""
    if not ctx.wheels.is_dir() or not any(ctx.wheels.glob("*.whl")):
        return f"no wheel folder at {ctx.wheels} (bench/gpu_wheels.sh makes it)"
    names = list(CARRIED)
    if any(ctx.wheels.glob("transformers-*.whl")):
        names += CARRIED_TRANSFORMERS
    if ctx.rehearse and not ctx.install:
        # the wheels are for the GPU machine's Python: resolve them for it, install nothing
        # (CARRIED only: with --target nothing installed counts, and numpy, which transformers
        # needs, is never in the folder)
        target = ["--target", str(ctx.out / "dry-run-target")]
        plat = [a for p in PLATFORMS for a in ("--platform", p)]
        py = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:"]
        offline = ["--no-index", "--find-links", str(ctx.wheels), "--dry-run"]
        return [_pip(ctx, *offline, "--ignore-installed", *py, *plat, *target, *CARRIED)]
    offline = ["--no-index", "--find-links", str(ctx.wheels)]
    return [_pip(ctx, *offline, *names), _pip(ctx, *offline, "--no-deps", "-e", str(ROOT))]


VERSIONS_PY = r"""
import json, platform, sys
import torch
info = {"python": sys.version.split()[0], "platform": platform.platform(),
        "torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
        "cuda": torch.version.cuda}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count,
                memory_bytes=p.total_memory, device_count=torch.cuda.device_count())
try:
    import triton
    info["triton"] = triton.__version__
except ImportError as e:
    info["triton"] = f"not importable: {e}"
text = json.dumps(info, indent=2)
open(sys.argv[1], "w").write(text + "\n")
print(text)
"""


def versions(ctx: Context) -> Commands | str:
    """Python, torch, CUDA, GPU and Triton as JSON; the installed packages; nvidia-smi."""
    cmds = [
        [ctx.python, "-c", VERSIONS_PY, str(ctx.result("versions"))],
        [ctx.python, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
    ]
    if shutil.which("nvidia-smi"):
        cmds.append(["nvidia-smi"])
    return cmds


def run_step(name: str, script: str, args: Callable[[Context], list[str]]) -> Build:
    def build(ctx: Context) -> Commands | str:
        return [ctx.dsprof("run", "--out", str(ctx.runs(name)), script, *args(ctx))]

    return build


def analyze_step(run: str) -> Build:
    def build(ctx: Context) -> Commands | str:
        folder = ctx.run_dirs.get(run)
        if folder is None:
            return f"no run folder from step {run}"
        return [ctx.dsprof("analyze", "--json", str(folder))]

    return build


def fix_step(name: str, script: str, args: Callable[[Context], list[str]], *recipes: str) -> Build:
    def build(ctx: Context) -> Commands | str:
        chosen = [a for r in recipes for a in ("--recipe", r)]
        return [
            ctx.dsprof("fix", "--json", "--out", str(ctx.runs(name)), *chosen, script, *args(ctx))
        ]

    return build


def kernels(ctx: Context) -> Commands | str:
    if ctx.rehearse:  # no GPU to time on: compile every kernel for the H100 (sm_90) instead
        return [[ctx.python, "bench/kernels.py", "--registers", "90"]]
    return [[ctx.python, "bench/kernels.py", "--min-run-time", "0.2", "--json", str(ctx.result("kernels"))]]  # fmt: skip


def overhead(ctx: Context) -> Commands | str:
    rounds = ["--rounds", "1", "--steps", "10"] if ctx.rehearse else ["--rounds", "3"]
    return [[ctx.python, "bench/overhead.py", *rounds]]


STEPS = (
    Step("install", 90, 20, install, "carried wheels and dsprof (--no-deps), offline",
         own_pip_config=True),
    Step("versions", 30, 5, versions, "python, torch, CUDA, GPU, triton; nvidia-smi"),
    Step("env", 30, 5, lambda c: [c.dsprof("env")], "dsprof env: NVML, CUDA, Triton seen"),
    Step("run-bert", 120, 30, run_step("run-bert", BERT, lambda c: _bert_args(c, 20)),
         "dsprof run: BERT-base fp32, batch 8, seq 128, on CUDA"),
    Step("run-frag", 90, 20, run_step("run-frag", FRAGMENTATION, _frag_args),
         "dsprof run: planted CUDA allocator fragmentation"),
    Step("analyze-bert", 60, 10, analyze_step("run-bert"), "dsprof analyze --json on run-bert",
         stdout_json=True),
    Step("analyze-frag", 60, 10, analyze_step("run-frag"), "dsprof analyze --json on run-frag",
         stdout_json=True),
    Step("fix-frag", 120, 40, fix_step("fix-frag", FRAGMENTATION, _frag_args, "alloc-conf"),
         "dsprof fix --json --recipe alloc-conf on the fragmentation script", stdout_json=True),
    Step("kernels", 150, 40, kernels, "bench/kernels.py: Triton vs eager vs torch.compile"),
    Step("fix-bert-eager", 180, 60,
         fix_step("fix-bert-eager", BERT, lambda c: _bert_args(c, 16), "fp16", "bf16", "tf32", "sdpa"),
         "dsprof fix --json on BERT-base: fp16, bf16, tf32, sdpa", stdout_json=True),
    Step("fix-bert-compile", 240, 90,
         fix_step("fix-bert-compile", BERT, lambda c: _bert_args(c, 16), "compile", "cuda-graphs"),
         "dsprof fix --json on BERT-base: compile, cuda-graphs", stdout_json=True),
    Step("overhead", 120, 40, overhead, "bench/overhead.py --rounds 3 (collection overhead)"),
)  # fmt: skip
BY_NAME = {s.name: s for s in STEPS}


@dataclass
class Outcome:
    """What happened to one step."""

    name: str
    what: str
    outcome: str = "pending"  # ok | failed | timeout | skipped
    reason: str = ""
    limit_s: float = 0.0
    elapsed_s: float = 0.0
    exit_codes: list[int] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


def _stop(proc: subprocess.Popen) -> None:
    """SIGINT to the step's process group (dsprof keeps what it has), then SIGKILL."""
    for sig, wait in ((signal.SIGINT, STOP_GRACE_S), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def execute(step: Step, ctx: Context, limit_s: float, result: Outcome) -> None:
    """Run the step's commands one after another within limit_s; fill in `result`."""
    built = step.build(ctx)
    if isinstance(built, str):
        result.outcome, result.reason = "skipped", built
        return
    logs = ctx.out / "logs"
    out_path = ctx.result(step.name) if step.stdout_json else logs / f"{step.name}.out"
    for d in (logs, ctx.out / "results"):
        d.mkdir(parents=True, exist_ok=True)
    if step.name.startswith(("run-", "fix-")):
        shutil.rmtree(ctx.runs(step.name), ignore_errors=True)  # a re-run starts clean
        ctx.run_dirs.pop(step.name, None)
    # offline; unbuffered, so a stopped step's log ends where it stopped; rich tables unwrapped
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("TRITON_INTERPRET", None)  # kernels time real launches, never the interpreter
    if step.own_pip_config:  # the wheel folder alone must do: no find-links or index from config
        env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
    start = time.monotonic()
    result.limit_s = round(limit_s, 1)
    with open(out_path, "wb") as out, open(logs / f"{step.name}.err", "wb") as err:
        for argv in built:
            result.commands.append(_shown(argv))
            left = limit_s - (time.monotonic() - start)
            proc = subprocess.Popen(
                argv, cwd=ROOT, stdout=out, stderr=err, env=env, start_new_session=True
            )
            try:
                code = proc.wait(timeout=max(left, 0.05))
            except subprocess.TimeoutExpired:
                _stop(proc)
                result.outcome = "timeout"
                result.reason = f"stopped at its {limit_s:.0f} s limit: {' '.join(argv[:6])} ..."
                break
            except KeyboardInterrupt:
                _stop(proc)
                raise
            result.exit_codes.append(code)
            if code != 0:
                result.outcome = "failed"
                result.reason = f"exit {code}: {_last_line(logs / f'{step.name}.err')}"
                break
        else:
            result.outcome = "ok"
    result.elapsed_s = round(time.monotonic() - start, 1)
    if step.name.startswith("run-"):
        folders = sorted(p for p in ctx.runs(step.name).glob("*") if p.is_dir())
        if folders:
            ctx.run_dirs[step.name] = folders[-1]
    result.facts = facts(step.name, ctx.out, ctx.run_dirs.get(step.name))


def _shown(argv: list[str]) -> str:
    """A command line for people: inline code shown as <code>."""
    return " ".join("<code>" if "\n" in a else a for a in argv)


def _last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(nothing on stderr)"


def run_check(
    steps: list[Step], ctx: Context, budget_s: float, meta: dict[str, Any]
) -> list[Outcome]:
    """Every step in order within the budget, the summary rewritten after each."""
    results = [Outcome(s.name, s.what) for s in steps]
    start = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - start:6.1f}s] {text}", flush=True)

    for step, result in zip(steps, results, strict=True):
        left = budget_s - (time.monotonic() - start)
        if step.limit_s <= 0:
            result.outcome, result.reason = "skipped", "not selected (--only/--skip)"
        elif left < step.min_s:
            result.outcome = "skipped"
            result.reason = (
                f"time budget: {left:.0f} s left, the step needs at least {step.min_s} s"
            )
        else:
            limit = min(step.limit_s, left)
            say(f"{step.name}: {step.what} (limit {limit:.0f} s)")
            execute(step, ctx, limit, result)
        say(f"{step.name}: {result.outcome} {result.reason}")
        meta["spent_s"] = round(time.monotonic() - start, 1)
        write_summary(ctx.out, [vars(r) for r in results], meta)
    return results


def plan(only: str | None, skip: str, limits: list[str], scale: float = 1.0) -> list[Step]:
    """STEPS with limits and minimums times `scale`, then --limit; a step left out by
    --only/--skip gets limit 0."""
    names = set(BY_NAME)
    chosen = ({n.strip() for n in only.split(",") if n.strip()} | {"install"}) if only else names
    dropped = {n.strip() for n in skip.split(",") if n.strip()}
    seconds: dict[str, float] = {}
    for item in limits:
        name, _, value = item.partition("=")
        try:
            seconds[name.strip()] = float(value)
        except ValueError:
            raise SystemExit(f"--limit wants STEP=SECONDS, not {item!r}") from None
    unknown = (chosen | dropped | set(seconds)) - names
    if unknown:
        raise SystemExit(f"unknown step(s) {sorted(unknown)}; the steps are {', '.join(BY_NAME)}")
    out = []
    for s in STEPS:
        limit = seconds.get(s.name, s.limit_s * scale) if s.name in chosen - dropped else 0
        out.append(replace(s, limit_s=limit, min_s=min(s.min_s * scale, limit)))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the check; 0 when no step failed or ran out of time."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir", type=Path, nargs="?", help="folder that receives everything")
    p.add_argument("--rehearse", action="store_true", help="run the steps on this CPU, small")
    p.add_argument("--wheels", type=Path, default=ROOT / ".whl", help="the carried wheel folder")
    p.add_argument("--install", action="store_true", help="with --rehearse: install for real")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds in all")
    p.add_argument(
        "--time-scale",
        type=float,
        help="multiply the budget and every step's limit (default 1; 3 with --rehearse: "
        "two shared cores run the small steps slower than the GPU machine runs the real ones)",
    )
    p.add_argument("--only", help="comma-separated steps to run (install always runs)")
    p.add_argument("--skip", default="", help="comma-separated steps to leave out")
    p.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="STEP=SECONDS",
        help="change a step's time limit (repeatable)",
    )
    p.add_argument("--bundle", type=Path, help="also pack OUTDIR into at most 8 files here")
    p.add_argument("--bundle-mib", type=float, default=56.0, help="size budget of the bundle")
    p.add_argument("--list", action="store_true", help="print the steps and exit")
    p.add_argument("--carried", action="store_true", help="print the carried requirements")
    p.add_argument("--carried-transformers", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.carried or args.carried_transformers:
        print(" ".join(CARRIED_TRANSFORMERS if args.carried_transformers else CARRIED))
        return 0
    scale = args.time_scale or (REHEARSAL_TIME_SCALE if args.rehearse else 1.0)
    budget = args.budget * scale
    steps = plan(args.only, args.skip, args.limit, scale)
    ctx = Context(args.outdir or Path("OUTDIR"), args.rehearse, args.wheels, args.install)
    if args.list:
        for s in steps:
            built = s.build(ctx)
            cmds = built if isinstance(built, str) else "; ".join(map(_shown, built))
            print(f"{s.name:<17} limit {s.limit_s:>4.0f} s  {s.what}\n    {cmds}")
        return 0
    if args.outdir is None:
        p.error("OUTDIR is required")
    ctx.out.mkdir(parents=True, exist_ok=True)
    ctx.out = ctx.out.resolve()
    for name in ("run-bert", "run-frag"):  # run folders kept from an earlier call in OUTDIR
        found = sorted(d for d in ctx.runs(name).glob("*") if d.is_dir())
        if found:
            ctx.run_dirs[name] = found[-1]
    meta: dict[str, Any] = {
        "mode": "rehearse" if args.rehearse else "gpu",
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "budget_s": budget,
        "time_scale": scale,
        "argv": sys.argv,
    }
    results = run_check(steps, ctx, budget, meta)
    if args.bundle:
        meta["bundle"] = bundle(ctx.out, args.bundle, args.bundle_mib * 2**20)
        write_summary(ctx.out, [vars(r) for r in results], meta)
        copy_summaries(ctx.out, args.bundle)
    print((ctx.out / "summary.md").read_text(), flush=True)
    return 1 if any(r.outcome in ("failed", "timeout") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
