"""The child process: runs the user's script as `python script.py args` would, under collectors.

Started by the parent as `python -m dsprof.runner.child` with DSPROF_CHILD_CONFIG naming a JSON
file. Steps stream to metrics/steps.jsonl (one line each, flushed) so that the parent can show
progress and keep everything collected if this process dies.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dsprof.core.child import ChildConfig, ChildInfo
from dsprof.core.errors import DsprofError
from dsprof.runner.generate import GeneratedTokens
from dsprof.runner.model_facts import ModelFacts
from dsprof.store.documents import read_child_config, write_model, write_text_atomic

CONFIG_ENV = "DSPROF_CHILD_CONFIG"
STEPS_FLUSH_S = 0.2
EXIT_INTERRUPTED = 130


class StopRun(BaseException):
    """Raised at a step end once --max-steps is reached: ends the script as a normal exit."""


class ChildSession:
    """Collectors and step bookkeeping inside the profiled process."""

    def __init__(self, config: ChildConfig) -> None:
        import torch

        from dsprof.collectors import cuda_memory
        from dsprof.collectors.torch_profiler import ProfilerWindow, cuda_in_use
        from dsprof.runner import dataloaders, steps
        from dsprof.runner.capture import CaptureBudget, OutputCapture
        from dsprof.store import live_steps
        from dsprof.store.layout import RunPaths

        self.torch = torch
        self.config = config
        self.paths = RunPaths(Path(config.run_dir))
        self.max_steps = config.max_steps
        self.cuda = cuda_in_use()
        self.cuda_memory = cuda_memory
        self.tracker = steps.StepTracker(worker_log=self.paths.worker_modules_live)
        steps.TRACKER = self.tracker
        self._steps_module = steps
        default = CaptureBudget()
        budget = CaptureBudget(
            step_bytes=default.step_bytes
            if config.capture_step_bytes is None
            else config.capture_step_bytes,
            run_bytes=default.run_bytes
            if config.capture_run_bytes is None
            else config.capture_run_bytes,
        )
        self.capture = OutputCapture(self.paths, config.capture_steps, budget)
        self.window = (
            ProfilerWindow(
                self.paths.trace_dir,
                config.warmup_steps,
                config.active_steps,
                self.cuda,
                Path(config.trace_hold_file) if config.trace_hold_file else None,
            )
            if config.trace
            else None
        )
        # the tracker keeps steps in memory; they are written every STEPS_FLUSH_S in one write:
        # a line per step would cost the script a format and a syscall per call; a killed child
        # loses at most that much of steps.jsonl
        self.steps_file = open(self.paths.steps_live, "ab")  # noqa: SIM115
        self.steps_file.write(live_steps.header())
        self._flush_lock = threading.Lock()
        self._stopped = False
        self.mem_file = (
            open(self.paths.cuda_memory_live, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
            if self.cuda
            else None
        )
        self.restore_dataloader = dataloaders.install()
        self.dataloaders = dataloaders.RECORDED
        dataloaders.RECORDED.clear()
        self.recipes: dict[str, Any] = {}
        self._encode = live_steps.encode_rows
        self.tracker.listeners = [self.on_step]
        self.tracker.on_flush_due = self._flush_rows
        self.model_facts = ModelFacts()
        self.generated = GeneratedTokens()

    def start(self) -> None:
        names = list(self.config.recipes)
        if names:
            from dsprof.recipes.trial import install

            self.recipes = install(names, dict(self.config.recipe_options), self.tracker)
        # before any recipe's hook: the model as the script made it, called as the script calls it
        self.tracker.first_call_hooks.insert(0, self.model_facts.first_call)
        self.generated.install()
        if self.window is not None:
            self.window.start()
            self.tracker.traced_since_ns = self._traced_since()
            self.tracker.on_model_start = self._model_step_starts
        self.tracker.install()
        self.tracker.start_clock()
        if self.config.on_demand:  # on the main thread: it initialises torch.profiler here
            from dsprof.live.agent import serve_on_demand

            serve_on_demand(service_run=str(self.paths.root))

    def _traced_since(self) -> int:
        since = self.window.recording_since_ns if self.window is not None else None
        return since if since is not None else self._steps_module.NOT_TRACING

    def _model_step_starts(self, step: int) -> None:
        assert self.window is not None
        self.window.step_started(step)
        self.tracker.traced_since_ns = self._traced_since()

    def on_step(self, row: Any, output: Any, inputs: Any) -> None:
        """A step ended: drive the window, capture, --max-steps (a listener until none needs it)."""
        tracker = self.tracker
        if self._stopped:
            return
        model_step = tracker.is_model_step(row)
        window = self.window
        if window is not None and not window.done:
            if row[4] == "marker":
                window.marker(row[0])
                if window.recording_since_ns is not None:
                    tracker.traced_since_ns = min(self._traced_since(), row[2])
                else:
                    tracker.traced_since_ns = self._traced_since()
            elif model_step:
                window.step_ended(row[0])
                tracker.traced_since_ns = self._traced_since()
            if window.done:
                tracker.on_model_start = None
        if model_step:
            if self.mem_file is not None:
                for sample in self.cuda_memory.sample(row[0]):
                    self.mem_file.write(json.dumps(sample) + "\n")
            capture = self.capture
            if output is not None and capture.wants(row[0]):
                capture.save(row[5], row[0], output, inputs)
            if capture.pending and (window is None or window.recording_since_ns is None):
                capture.flush()  # outside the traced window: writing costs the trace nothing
            if self.max_steps is not None and tracker.step_count >= self.max_steps:
                if threading.current_thread() is threading.main_thread():
                    raise StopRun
                # a step on another thread (a thread pool): raising there would fail the
                # script's call, not end it; recording stops and the script runs to its end
                self._stopped = True
        if not self._needs_every_step():
            # steady state: steps cost the script only their row (rows are written at flushes)
            tracker.listeners = [f for f in tracker.listeners if f != self.on_step]

    def _needs_every_step(self) -> bool:
        """Whether a step end still has work here."""
        window = self.window
        model = self.tracker.model
        return (
            (window is not None and not window.done)
            or self.mem_file is not None
            or self.max_steps is not None
            or model is None
            or self.capture.wants(model.steps)
            or self.capture.pending
        )

    def _flush_rows(self, now_ns: int | None = None) -> None:
        with self._flush_lock:
            rows = self.tracker.rows
            n = len(rows)
            chunk = rows[:n]
            del rows[:n]  # rows appended meanwhile by other threads stay for the next flush
            if chunk and not self.steps_file.closed:
                self.steps_file.write(self._encode(chunk))
                self.steps_file.flush()
            self.tracker.flush_due_ns = (now_ns or time.time_ns()) + int(STEPS_FLUSH_S * 1e9)

    def finish(self, status: str, exit_code: int, error: str | None) -> None:
        """Stop collectors and write child.json; never raises."""
        try:
            self.max_steps = None
            self.tracker.close_groups()
            self.tracker.uninstall()
            self.tracker.listeners = []
            self.tracker.on_flush_due = None
            if self.window is not None:
                self.window.stop()
            self.restore_dataloader()
            self.generated.uninstall()
        except Exception as e:  # cleanup must not hide the script's own outcome
            error = error or f"dsprof cleanup failed: {e!r}"
        self._flush_rows()
        with self._flush_lock:
            self.steps_file.close()
        if self.mem_file is not None:
            self.mem_file.close()
        tracker = self.tracker
        model = tracker.model
        outputs = self.capture.finish(model.index if model is not None else None)
        self.generated.write(self.paths.generated_tokens)
        torch = self.torch
        roots = [r.info() for r in tracker.roots]
        model_entry = model_info(tracker)
        info = {
            "status": status,
            "exit_code": exit_code,
            "error": error,
            "end_ns": time.time_ns(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "hip": getattr(torch.version, "hip", None),
            "cudnn": torch.backends.cudnn.version()
            if torch.backends.cudnn.is_available()
            else None,
            "cuda_available": self.cuda,
            "cuda_devices": (
                [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                if self.cuda
                else []
            ),
            "torch_num_threads": torch.get_num_threads(),
            "torch_num_interop_threads": torch.get_num_interop_threads(),
            "device_types": sorted(self.capture.device_types),
            "steps_seen": tracker.step_count,
            "step_mode": tracker.mode,
            "step_source": step_source(tracker),
            "model": model_entry,
            "autograd_enabled_steps": (
                tracker.marker_autograd_steps
                if tracker.mode == "marker"
                else (model.autograd_steps if model is not None else 0)
            ),
            "training_modules": model.training_list if model is not None else [],
            "root_modules": roots,
            "root_inputs": {r["qualname"]: r["inputs"] for r in roots},
            "training_module_classes": _merge_counts(r["training_module_classes"] for r in roots),
            **cpu_facts(),
            "call_site": (model_entry or {}).get("call_site")
            or next((r["call_site"] for r in roots if r["call_site"]), None),
            "dataloaders": self.dataloaders,
            "worker_processes": worker_processes(self.paths.worker_modules_live),
            "outputs": outputs,
            "profiler": self.window.status() if self.window is not None else None,
            "recipes": self.recipes,
            "first_calls": self.model_facts.roots,
            "generate_calls": self.generated.total_calls,
        }
        try:
            write_model(self.paths.child_info, ChildInfo.model_validate(info), lenient=True)
        except ValidationError as e:  # keep what was observed: the reader names the bad field
            info["error"] = info["error"] or f"dsprof: child.json does not fit its schema: {e}"
            write_text_atomic(self.paths.child_info, json.dumps(info, indent=1, default=str))


def step_source(tracker: Any) -> str | None:
    """How the run's steps were found: marker, or the model's way of being timed; None: none."""
    if tracker.mode == "marker":
        return "marker" if tracker.marker_steps else None
    model = tracker.model
    if model is None or not model.steps:
        return None
    return sorted(model.sources)[0] if len(model.sources) == 1 else "+".join(sorted(model.sources))


# the fields of a root's info() that child.json's `model` repeats (dsprof.core.child.ModelInfo)
MODEL_FIELDS = ("index", "class", "qualname", "calls", "failed_calls", "threads", "call_site")


def model_info(tracker: Any) -> dict[str, Any] | None:
    """The model (the root with the most summed call time) for child.json: its root entry's
    fields and its share of all top-level call time."""
    model = tracker.model
    if model is None:
        return None
    total = sum(r.total_ns for r in tracker.roots) or 1
    info = model.info()
    return {**{k: info[k] for k in MODEL_FIELDS}, "time_share": model.total_ns / total}


def worker_processes(path: Path) -> list[dict[str, Any]]:
    """Forked processes that called modules (their first call each), read and removed."""
    rows: list[dict[str, Any]] = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        path.unlink(missing_ok=True)
    return rows[:100]


def _merge_counts(dicts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def cpu_facts() -> dict[str, Any]:
    """The cores this process may really use (affinity and cgroup quota), for cpu-threads."""
    from dsprof.collectors.cpus import cgroup_cpu_quota, cpu_affinity, usable_cores

    return {
        "usable_cpus": usable_cores(),
        "cpu_affinity": cpu_affinity(),
        "cgroup_cpu_quota": cgroup_cpu_quota(),
    }


def _exit_code(code: object) -> int:
    """What `python script.py` exits with for SystemExit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _print_user_traceback(exc: BaseException) -> None:
    """The traceback as `python script.py` would print it: dsprof's and runpy's frames left out."""
    tb = traceback.TracebackException.from_exception(exc)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runpy_file = os.path.abspath(runpy.__file__)
    stack = tb.stack
    while stack and (
        os.path.abspath(stack[0].filename).startswith(here + os.sep)
        or os.path.abspath(stack[0].filename) == runpy_file
        or stack[0].filename == "<frozen runpy>"
    ):
        stack.pop(0)
    sys.stderr.write("".join(tb.format()))
    sys.stderr.flush()


def _run_script_as_main(path: str) -> None:
    """Execute the script as the interpreter does: a fresh __main__ module, __file__ absolute
    (Python >= 3.9), sys.argv[0] as typed; runpy.run_path would rewrite sys.argv[0]."""
    import builtins
    import importlib.machinery
    import types

    source = Path(path).read_bytes()
    code = compile(source, path, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__dict__.update(
        __file__=path,
        __builtins__=builtins,
        __loader__=importlib.machinery.SourceFileLoader("__main__", path),
        __spec__=None,
        __cached__=None,
        __package__=None,
    )
    _KEEP.append(sys.modules["__main__"])  # this bootstrap module stays alive for its functions
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


_KEEP: list[Any] = []


def run_target(config: ChildConfig) -> int:
    """Run the script or module as __main__, exactly as the interpreter would."""
    target = config.target
    args = list(config.args)
    session = ChildSession(config)
    status, exit_code, error = "ok", 0, None
    if config.module:
        sys.argv = [target, *args]
        sys.path[0] = os.getcwd()
    else:
        script = os.path.abspath(target)
        sys.argv = [target, *args]
        sys.path[0] = os.path.dirname(script)
    try:
        session.start()
        if config.module:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            _run_script_as_main(os.path.abspath(target))
    except StopRun:
        status = "ok"
    except SystemExit as e:
        exit_code = _exit_code(e.code)
        status = "ok" if exit_code == 0 else "failed"
        error = None if exit_code == 0 else f"the script exited with status {exit_code}"
    except KeyboardInterrupt as e:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup short
        # python prints the traceback and ends by SIGINT; the parent ends that way (cli/main.py)
        _print_user_traceback(e)
        status, exit_code, error = "interrupted", EXIT_INTERRUPTED, "interrupted (SIGINT)"
    except BaseException as e:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _print_user_traceback(e)
        status, exit_code = "failed", 1
        error = "".join(traceback.format_exception_only(type(e), e)).strip()
    sys.stdout.flush()
    session.finish(status, exit_code, error)
    return exit_code


def main() -> None:
    config_path = os.environ.pop(CONFIG_ENV, None)
    if not config_path:
        sys.exit("dsprof.runner.child is started by `dsprof run`, not directly")
    try:
        config = read_child_config(Path(config_path))
    except DsprofError as e:  # a parent of another dsprof version: say so, run nothing
        sys.exit(f"dsprof: {e}")
    if config.job_dir is not None:  # one rank of `dsprof run --nproc-per-node N`: ranks/<RANK>/
        from dsprof.runner.distributed import resolve_rank_config

        config = resolve_rank_config(config)
    if config.stdout_line_buffered and sys.stdout is not None:
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    # Ctrl-C must reach the script even when dsprof itself was started with SIGINT ignored
    # (a background job of a non-interactive shell): the script gets KeyboardInterrupt as usual
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = run_target(config)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
