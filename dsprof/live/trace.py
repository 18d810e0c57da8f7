"""`dsprof trace PID`: ask a running, opted-in service for a profiler window; finish the run folder.

This process (not the service) creates the run folder, samples the service's process tree with
psutil and NVML while the window is open, gzips the exported trace, and runs the analyzers: the
service pays only for the window itself. If the service exits or is killed during the window,
what was recorded is kept and the run is marked interrupted, with the reason.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsprof.collectors.base import Samples
from dsprof.core.errors import DsprofError, RunFolderError
from dsprof.core.findings import FindingsDocument
from dsprof.core.live import CaptureInfo, CaptureRequest
from dsprof.core.manifest import RunManifest
from dsprof.live import control
from dsprof.live.target import Target, is_alive, resolve_pid, tree_pids
from dsprof.store.documents import read_capture, write_model
from dsprof.store.layout import RunPaths
from dsprof.store.run_store import DEFAULT_RUNS_DIR, create_run_folder

# after the window should have ended, how long to wait for the export before giving up
EXPORT_GRACE_S = 120.0
# how often the target's liveness is checked while waiting
ALIVE_POLL_S = 0.2


class NotOptedInError(control.ControlError):
    """The process runs no on-demand agent."""


@dataclass
class TraceRequest:
    """One `dsprof trace`."""

    pid: int
    steps: int | None = 5
    duration_s: float | None = None  # when given, it replaces steps
    timeout_s: float = 60.0
    out: Path = DEFAULT_RUNS_DIR
    name: str | None = None
    sample_hz: float = 10.0
    record_shapes: bool = True
    analyze: bool = True


@dataclass
class TraceResult:
    """The finished run folder and how the capture went."""

    paths: RunPaths
    manifest: RunManifest
    capture: CaptureInfo
    seconds: float  # from the request to the folder being complete
    findings: FindingsDocument


def not_opted_in_message(target: Target) -> str:
    """What to do when the process runs no agent (and whether injection could work)."""
    from dsprof.live.inject import injection_note

    return (
        f"PID {target.pid} ({target.label}) does not accept on-demand traces. Opt in with one "
        "line at start-up: `import dsprof; dsprof.serve_on_demand()`, or start it with "
        f"`dsprof run --on-demand ...`. {injection_note(target)}"
    )


def find_agent(target: Target) -> tuple[int, Path]:
    """(pid, socket) of the agent in the target's process tree; NotOptedInError if none."""
    pids = tree_pids(target.pid) or [target.pid]
    found = control.find_sockets(pids, _target_env(target.pid)) or control.find_sockets(pids)
    chosen = control.choose_agent(target.pid, found)
    if chosen is None:
        raise NotOptedInError(not_opted_in_message(target))
    return chosen


def _target_env(pid: int) -> dict[str, str] | None:
    """The target's environment (its control directory may differ from ours)."""
    import psutil

    try:
        return dict(psutil.Process(pid).environ())
    except psutil.Error:
        return None


def take_trace(req: TraceRequest, say: Callable[[str], None] = lambda s: None) -> TraceResult:
    """Run one on-demand capture (see the module docstring). `say` receives progress lines."""
    if req.steps is None and req.duration_s is None:
        raise DsprofError("give --steps N or --duration D")
    t0 = time.monotonic()
    requested_ns = time.time_ns()
    target = resolve_pid(req.pid)
    agent_pid, path = find_agent(target)
    with control.connect(agent_pid, path) as conn:
        hello = conn.hello()
        if hello.get("busy"):
            raise control.ControlError(
                f"PID {agent_pid} is already taking a capture: one at a time, try again when "
                "it ends"
            )
        paths = create_run_folder(req.out, req.name or f"{service_label(hello, target)}-trace")
        manifest = _manifest(paths, target, hello, req, requested_ns)
        write_model(paths.manifest, manifest)
        capture_req = CaptureRequest(
            run_dir=str(paths.root.resolve()),
            steps=req.steps if req.duration_s is None else None,
            duration_s=req.duration_s,
            timeout_s=req.timeout_s,
            record_shapes=req.record_shapes,
            requested_ns=requested_ns,
        )
        from dsprof.collectors.sampling import Sampling

        with Sampling(agent_pid, req.sample_hz) as sampling:
            conn.send({"op": "capture", "request": capture_req.model_dump()})
            answer = conn.receive(10.0)
            if answer is None or not answer.get("ok"):
                shutil.rmtree(paths.root, ignore_errors=True)  # nothing was recorded
                why = answer.get("error") if answer else "it closed the connection"
                raise control.ControlError(f"PID {agent_pid} refused the capture: {why}")
            say(f"PID {agent_pid} accepted: {_what(req)}")
            sent, gone = _wait_done(conn, agent_pid, req, say)
    info = _settle_capture(paths, sent, gone, agent_pid)
    _compress_trace(paths, info)
    result = _finish(paths, manifest, info, sampling.samples)
    from dsprof.analyzers import write_findings

    findings = write_findings(paths.root, analyze=req.analyze)
    return TraceResult(paths, result, info, time.monotonic() - t0, findings)


def service_label(hello: dict[str, Any], target: Target) -> str:
    """The service's script or module as it sees itself (sys.argv[0]), else the process's label."""
    argv = hello.get("argv") or []
    if argv and argv[0] not in ("", "-c", "-m"):
        return Path(str(argv[0])).stem or target.label
    return target.label


def _what(req: TraceRequest) -> str:
    if req.duration_s is not None:
        return f"recording {req.duration_s:g} s"
    return f"recording its next {req.steps} steps (at most {req.timeout_s:g} s)"


def _manifest(
    paths: RunPaths, target: Target, hello: dict[str, Any], req: TraceRequest, start_ns: int
) -> RunManifest:
    from dsprof.collectors.environment import collect_environment

    env = collect_environment()
    env.torch = hello.get("torch")
    return RunManifest(
        run_id=paths.root.name,
        kind="trace",
        argv=list(hello.get("argv") or target.cmdline),
        target=service_label(hello, target),
        cwd=str(hello.get("cwd") or target.cwd or ""),
        start_ns=start_ns,
        environment=env,
        options={
            "pid": hello.get("pid", target.pid),
            "steps": req.steps if req.duration_s is None else None,
            "duration_s": req.duration_s,
            "timeout_s": req.timeout_s,
            "record_shapes": req.record_shapes,
            "sample_hz": req.sample_hz,
            # the steady-state statistics take every traced step
            "warmup_steps": 0,
            # the service's own run folder when it runs under `dsprof run --on-demand`
            "service_run": hello.get("service_run"),
        },
    )


def _wait_done(
    conn: control.AgentConnection, pid: int, req: TraceRequest, say: Callable[[str], None]
) -> tuple[dict[str, Any] | None, bool]:
    """The agent's "done" capture document, or (None, True) when the service went away."""
    window = req.duration_s if req.duration_s is not None else req.timeout_s
    deadline = time.monotonic() + window + EXPORT_GRACE_S
    while time.monotonic() < deadline:
        try:
            message = conn.receive(ALIVE_POLL_S)
        except TimeoutError:
            if not is_alive(pid):
                return None, True
            continue
        if message is None:
            return None, True
        event = message.get("event")
        if event == "started":
            lag = (message["started_ns"] - time.time_ns()) / 1e9
            say(f"recording (the window opened {max(-lag, 0.0):.2f} s ago)")
        elif event == "done":
            return message.get("capture"), False
    raise control.ControlError(
        f"PID {pid} did not finish the capture within {window + EXPORT_GRACE_S:g} s"
    )


def _settle_capture(
    paths: RunPaths, sent: dict[str, Any] | None, gone: bool, pid: int
) -> CaptureInfo:
    """The capture document: the agent's, or one saying the service exited mid-window."""
    if sent is not None:
        return CaptureInfo.model_validate(sent)
    with contextlib.suppress(RunFolderError):
        if paths.capture.is_file():
            info = read_capture(paths.capture)  # written at exit, before the socket closed
            if info.status == "ok":
                info.status = "partial"
                info.reason = "the service exited right after the capture"
            write_model(paths.capture, info)
            return info
    steps = 0
    if paths.steps_live.is_file():
        steps = len(paths.steps_live.read_text(encoding="utf-8").splitlines())
    info = CaptureInfo(
        pid=pid,
        mode="steps",
        status="partial",
        reason=(
            "the service exited (or was killed) during the capture before it could write the "
            f"trace; kept: host samples and the {steps} steps it had written"
        ),
    )
    write_model(paths.capture, info)
    return info


def _compress_trace(paths: RunPaths, info: CaptureInfo) -> None:
    """gzip the exported trace here, not in the service (the same bytes, compressed)."""
    if not info.trace_file or info.trace_file.endswith(".gz"):
        return
    src = paths.trace_dir / info.trace_file
    if not src.is_file():
        return
    dst = src.with_name(src.name + ".gz")
    with open(src, "rb") as fin, gzip.open(dst, "wb", compresslevel=6) as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    src.unlink()
    info.trace_file = dst.name
    write_model(paths.capture, info)
    if paths.child_info.is_file():
        from dsprof.store.documents import read_child_info

        child = read_child_info(paths.child_info)
        if child.profiler is not None:
            child.profiler.trace_file = dst.name
            write_model(paths.child_info, child, lenient=True)


def _finish(
    paths: RunPaths,
    manifest: RunManifest,
    info: CaptureInfo,
    samples: list[Samples],
) -> RunManifest:
    from dsprof.runner import finalize

    result = finalize.finish_run(
        paths,
        manifest,
        0 if info.status == "ok" else 1,
        interrupted=info.status == "partial",
        samples=samples,
        write_manifest=info.status == "ok",  # otherwise written below, with the capture's error
    )
    final: RunManifest = result.manifest
    if info.status != "ok":
        final.error = f"capture {info.status}: {info.reason}"
        write_model(paths.manifest, final)
    return final
