"""The parent side of `dsprof run`: start the child, sample the host and GPUs, write the run folder.

Samplers live in this process so they never compete for the script's GIL. Everything the child
produces streams to disk as it goes (steps.jsonl, outputs, the trace), and this process converts
and finalises the run folder whatever way the child ends: exit, crash, Ctrl-C or a kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsprof.collectors.sampling import Sampling
from dsprof.core.child import ChildConfig
from dsprof.core.errors import UsageError
from dsprof.core.manifest import RunKind, RunManifest
from dsprof.runner import finalize
from dsprof.runner.child import CONFIG_ENV
from dsprof.runner.output import Tee
from dsprof.runner.progress import Progress
from dsprof.runner.stdin import StdinRecorder
from dsprof.runner.target import check_target
from dsprof.store.documents import write_model
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import DEFAULT_RUNS_DIR, check_writable_dir, create_run_folder

EXIT_INTERRUPTED = 130
# after Ctrl-C, how long the child gets to finish its cleanup before SIGINT is forwarded
# (covers a SIGINT sent to this process alone), then SIGTERM, then SIGKILL
FORWARD_AFTER_S = 1.0
TERMINATE_AFTER_S = 30.0
KILL_AFTER_S = 40.0


@dataclass
class RunRequest:
    """Everything `dsprof run` (and `dsprof fix` for its trials) asks of one run."""

    target: str
    args: list[str] = field(default_factory=list)
    module: bool = False
    out: Path = DEFAULT_RUNS_DIR
    run_dir: Path | None = None
    name: str | None = None
    warmup_steps: int = 1
    active_steps: int = 5
    trace: bool = True
    sample_hz: float = 10.0
    capture_steps: int = 3
    recipes: list[str] = field(default_factory=list)
    recipe_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    parent_run: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    echo: bool = True
    progress: bool = True
    max_steps: int | None = None
    # the trace window waits for this file to exist (dsprof load opens it mid-load)
    trace_hold_file: Path | None = None
    # the child runs the on-demand agent (dsprof trace PID takes windows while it runs)
    on_demand: bool = False
    capture_step_bytes: int | None = None  # None: the default budget (dsprof/runner/capture.py)
    capture_run_bytes: int | None = None
    # stdin: inherited, unless the run records it (to logs/stdin.bin) or replays a recorded file
    record_stdin: bool = False
    stdin_from: Path | None = None


@dataclass
class RunResult:
    """The finished run folder, its manifest and the exit code to pass on."""

    paths: RunPaths
    manifest: RunManifest
    exit_code: int
    # the signal the script's process ended by (python ends by SIGINT after an uncaught
    # KeyboardInterrupt): `dsprof run` ends by it too, so its parent sees what python gives
    signal: int | None = None


def _prepare_folder(req: RunRequest) -> RunPaths:
    if req.run_dir is not None:
        check_writable_dir(req.run_dir.parent)
        try:
            req.run_dir.mkdir(parents=False, exist_ok=False)
        except FileExistsError:
            raise UsageError("the run folder already exists", path=req.run_dir) from None
        paths = RunPaths(req.run_dir)
        paths.make_dirs()
        return paths
    stem = req.name or (req.target.rsplit(".", 1)[-1] if req.module else Path(req.target).stem)
    return create_run_folder(req.out, stem)


def new_manifest(
    req: RunRequest,
    run_id: str,
    options: dict[str, Any] | None = None,
    *,
    kind: RunKind | None = None,
    **fields: Any,
) -> RunManifest:
    """The run.json a run starts with (status running), from the request."""
    from dsprof.collectors.environment import collect_environment

    return RunManifest(
        run_id=run_id,
        kind=kind or ("module" if req.module else "script"),
        argv=[req.target, *req.args],
        target=req.target,
        cwd=os.getcwd(),
        start_ns=time.time_ns(),
        environment=collect_environment(),
        options={
            "warmup_steps": req.warmup_steps,
            "active_steps": req.active_steps,
            "trace": req.trace,
            "sample_hz": req.sample_hz,
            "capture_steps": req.capture_steps,
            "capture_step_bytes": req.capture_step_bytes,
            "capture_run_bytes": req.capture_run_bytes,
            "max_steps": req.max_steps,
            **({"on_demand": True} if req.on_demand else {}),
            **(options or {}),
        },
        parent_run=req.parent_run,
        recipes=list(req.recipes),
        **fields,
    )


def child_config(req: RunRequest, *, run_dir: str, job_dir: str | None = None) -> ChildConfig:
    """What the child (or dsprof.profile()'s in-process session) is asked to do.

    run_dir: the folder the child writes; job_dir: a multi-rank job's folder (each rank's child
    then writes ranks/<RANK>/ of it).
    """
    return ChildConfig(
        target=req.target,
        args=list(req.args),
        module=req.module,
        run_dir=run_dir,
        job_dir=job_dir,
        warmup_steps=req.warmup_steps,
        active_steps=req.active_steps,
        trace=req.trace,
        capture_steps=req.capture_steps,
        recipes=list(req.recipes),
        recipe_options=dict(req.recipe_options),
        max_steps=req.max_steps,
        trace_hold_file=str(req.trace_hold_file) if req.trace_hold_file else None,
        on_demand=req.on_demand,
        capture_step_bytes=req.capture_step_bytes,
        capture_run_bytes=req.capture_run_bytes,
    )


def child_env(
    req: RunRequest, paths: RunPaths, *, run_dir: str, job_dir: str | None = None
) -> dict[str, str]:
    """Write the child's config (paths.child_config) and return the child's environment."""
    config = child_config(req, run_dir=run_dir, job_dir=job_dir)
    # the script's stdout is a pipe to us: buffered as python's would be on our stdout (no
    # PYTHONUNBUFFERED, which the script would see, and which would keep output that python
    # loses at os._exit or a kill)
    config.stdout_line_buffered = req.echo and _isatty(sys.stdout)
    write_model(paths.child_config, config, lenient=True)
    return {**os.environ, **req.env, CONFIG_ENV: str(paths.child_config.resolve())}


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def run_script(req: RunRequest) -> RunResult:
    """Run the target under dsprof and return the finished run folder."""
    check_target(req.target, req.module)
    paths = _prepare_folder(req)
    manifest = new_manifest(req, paths.root.name)
    write_model(paths.manifest, manifest)
    env = child_env(req, paths, run_dir=str(paths.root.resolve()))

    stdin: Any = None  # inherited
    if req.stdin_from is not None:
        stdin = open(req.stdin_from, "rb")  # noqa: SIM115 - closed once the child has started
    elif req.record_stdin:
        stdin = subprocess.PIPE
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsprof.runner.child"],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    if req.stdin_from is not None:
        stdin.close()
    recorder = (
        StdinRecorder(proc.stdin, paths.stdin_log)
        if req.record_stdin and proc.stdin is not None
        else None
    )
    tee = Tee(proc, paths.stdout_log, paths.stderr_log, echo=req.echo)
    progress = Progress(paths.steps_live, enabled=req.progress)
    # the sampled collectors (host, NVML) on the child's process tree, stopped however this ends
    with Sampling(proc.pid, req.sample_hz) as sampling:
        interrupted = wait_for_child(proc, progress)
        if recorder is not None:
            recorder.close()
        tee.join()
    progress.close()
    return finalize.finish_run(
        paths, manifest, proc.returncode, interrupted=interrupted, samples=sampling.samples
    )


def wait_for_child(proc: subprocess.Popen[bytes], progress: Progress) -> bool:
    """Wait for the child; on Ctrl-C let it clean up, forwarding and escalating if it must."""
    interrupted_at: list[float] = []

    def on_signal(signum: int, frame: Any) -> None:
        if not interrupted_at:
            interrupted_at.append(time.monotonic())

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    forwarded = terminated = False
    try:
        # a live progress line redraws at 4 Hz; without one, fewer wake-ups disturb the script
        poll_s = 0.05 if progress.live else 0.2
        while proc.poll() is None:
            progress.refresh()
            time.sleep(poll_s)
            if not interrupted_at:
                continue
            waited = time.monotonic() - interrupted_at[0]
            with contextlib.suppress(ProcessLookupError):
                if waited > FORWARD_AFTER_S and not forwarded:
                    proc.send_signal(signal.SIGINT)
                    forwarded = True
                elif waited > TERMINATE_AFTER_S and not terminated:
                    proc.terminate()
                    terminated = True
                elif waited > KILL_AFTER_S:
                    proc.kill()
        progress.refresh()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return bool(interrupted_at) or proc.returncode == -int(signal.SIGINT)
