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
import time
import traceback
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dsprof.core.child import ChildConfig, ChildInfo
from dsprof.core.errors import DsprofError
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
        from dsprof.runner.capture import OutputCapture
        from dsprof.store.layout import RunPaths

        self.torch = torch
        self.config = config
        self.paths = RunPaths(Path(config.run_dir))
        self.max_steps = config.max_steps
        self.cuda = cuda_in_use()
        self.cuda_memory = cuda_memory
        self.tracker = steps.StepTracker()
        steps.TRACKER = self.tracker
        self._steps_module = steps
        self.capture = OutputCapture(self.paths.outputs_dir, config.capture_steps)
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
        # block-buffered and flushed at most every STEPS_FLUSH_S: a write per step would cost
        # the script a syscall per step; a killed child loses at most that much of steps.jsonl
        self.steps_file = open(self.paths.steps_live, "a", encoding="utf-8")  # noqa: SIM115
        self._next_flush = 0.0
        self.mem_file = (
            open(self.paths.cuda_memory_live, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
            if self.cuda
            else None
        )
        self.restore_dataloader = dataloaders.install()
        self.dataloaders = dataloaders.RECORDED
        dataloaders.RECORDED.clear()
        self.recipes: dict[str, Any] = {}
        self.tracker.listeners.append(self.on_step)

    def start(self) -> None:
        names = list(self.config.recipes)
        if names:
            from dsprof.recipes.trial import install

            self.recipes = install(names, dict(self.config.recipe_options), self.tracker)
        self.tracker.install()
        self.tracker.start_clock()
        if self.window is not None:
            self.window.start()
        if self.config.on_demand:  # on the main thread: it initialises torch.profiler here
            from dsprof.live.agent import serve_on_demand

            serve_on_demand(service_run=str(self.paths.root))

    def on_step(self, record: Any, output: Any, inputs: Any) -> None:
        if self.window is not None:
            record.traced = self.window.in_window(record.step)
            self.window.step()
        self.steps_file.write(record.as_json_line())
        now = time.monotonic()
        if now >= self._next_flush:
            self.steps_file.flush()
            self._next_flush = now + STEPS_FLUSH_S
        if self.mem_file is not None:
            for row in self.cuda_memory.sample(record.step):
                self.mem_file.write(json.dumps(row) + "\n")
        if self.capture.wants(record.step) and output is not None:
            self.capture.save(record.step, output, inputs)
        if self.window is None or not self.window.in_window(record.step + 1):
            self.capture.flush()  # outside the traced window: writing costs the trace nothing
        if self.max_steps is not None and self.tracker.step_count >= self.max_steps:
            raise StopRun

    def finish(self, status: str, exit_code: int, error: str | None) -> None:
        """Stop collectors and write child.json; never raises."""
        try:
            self.tracker.uninstall()
            self.tracker.listeners.clear()
            if self.window is not None:
                self.window.stop()
            self.restore_dataloader()
        except Exception as e:  # cleanup must not hide the script's own outcome
            error = error or f"dsprof cleanup failed: {e!r}"
        self.steps_file.close()
        if self.mem_file is not None:
            self.mem_file.close()
        self.capture.write_index(self.paths.outputs_index)
        torch = self.torch
        roots = self.tracker.roots_info()
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
            "steps_seen": self.tracker.step_count,
            "step_mode": self.tracker.mode,
            "autograd_enabled_steps": self.tracker.autograd_steps,
            "training_modules": self.tracker.training_names,
            "root_modules": roots,
            "root_inputs": {r["qualname"]: r["inputs"] for r in roots},
            "training_module_classes": _merge_counts(r["training_module_classes"] for r in roots),
            **cpu_facts(),
            "call_site": next((r["call_site"] for r in roots if r["call_site"]), None),
            "dataloaders": self.dataloaders,
            "profiler": self.window.status() if self.window is not None else None,
            "recipes": self.recipes,
        }
        try:
            write_model(self.paths.child_info, ChildInfo.model_validate(info), lenient=True)
        except ValidationError as e:  # keep what was observed: the reader names the bad field
            info["error"] = info["error"] or f"dsprof: child.json does not fit its schema: {e}"
            write_text_atomic(self.paths.child_info, json.dumps(info, indent=1, default=str))


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
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup short
        status, exit_code, error = "interrupted", EXIT_INTERRUPTED, "interrupted (SIGINT)"
        sys.stderr.write("KeyboardInterrupt\n")
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
    # Ctrl-C must reach the script even when dsprof itself was started with SIGINT ignored
    # (a background job of a non-interactive shell): the script gets KeyboardInterrupt as usual
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = run_target(config)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
