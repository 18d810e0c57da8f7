"""Parse workers (dsprof.trace.workers): forked only where safe, same frames, errors name the file.

The fork path runs only in a process that has not imported numpy or torch, so these tests drive
it in a fresh interpreter (as `dsprof analyze` runs) and compare with an in-process parse here.
"""

from __future__ import annotations

import gzip
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsprof.collectors.cpus import whole_usable_cores
from dsprof.core.errors import TraceError
from dsprof.trace import load_trace
from dsprof.trace.workers import ENV_WORKERS, TraceWorkers, worker_count

DATA = Path(__file__).parent / "data" / "traces"
RANK0 = DATA / "hta" / "rank0.json.gz"
DLRM = sorted((DATA / "param" / "dlrm_kineto").glob("*.json"))[:3]
needs_fork = pytest.mark.skipif(
    not hasattr(os, "fork") or whole_usable_cores() < 2,
    reason="parse workers need fork and two cores",
)

FORKED = """
import pickle, sys
from pathlib import Path
from dsprof.trace.workers import TraceWorkers
w = TraceWorkers([Path(p) for p in sys.argv[2:]])
assert w.slots == 2, w.slots
frames = w.frames()
tables = [{t: getattr(f, t) for t in ("cpu", "runtime", "gpu", "memory")} for f in frames]
with open(sys.argv[1], "wb") as out:
    pickle.dump(([f.metadata for f in frames], tables), out)
"""


def _run(
    code: str, *args: object, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@needs_fork
def test_workers_give_the_frames_of_an_in_process_parse(tmp_path: Path) -> None:
    paths = [RANK0, *DLRM]  # four traces, two workers: each parses two in turn
    out = tmp_path / "frames.pkl"
    proc = _run(FORKED, out, *paths, env={ENV_WORKERS: "2"})
    assert proc.returncode == 0, proc.stderr
    metadata, tables = pickle.loads(out.read_bytes())
    for path, meta, forked in zip(paths, metadata, tables, strict=True):
        here = load_trace(path)
        assert meta == here.metadata
        for name, df in forked.items():
            assert df.equals(getattr(here, name)), (path.name, name)
            assert df.dtypes.equals(getattr(here, name).dtypes)


def test_no_fork_once_numpy_is_imported_or_when_turned_off(monkeypatch) -> None:
    assert "numpy" in sys.modules  # this pytest process: parsing stays in-process
    assert worker_count(4) == 0
    w = TraceWorkers([RANK0])
    assert w.slots == 0
    assert len(w.frames()[0].kernels) == 6080
    proc = _run(
        "from dsprof.trace.workers import worker_count; print(worker_count(3))",
        env={ENV_WORKERS: "0"},
    )
    assert proc.stdout.strip() == "0"


@needs_fork
def test_a_bad_trace_in_a_worker_raises_its_trace_error(tmp_path: Path) -> None:
    bad = tmp_path / "cut.json.gz"
    bad.write_bytes(gzip.compress(gzip.decompress(RANK0.read_bytes()))[:-4000])
    code = (
        "import sys\nfrom pathlib import Path\nfrom dsprof.trace.workers import TraceWorkers\n"
        "from dsprof.core.errors import TraceError\n"
        "w = TraceWorkers([Path(p) for p in sys.argv[1:]])\nassert w.slots == 2\n"
        "try:\n    w.frames()\nexcept TraceError as e:\n    print(type(e).__name__, e.path, e)\n"
    )
    proc = _run(code, DLRM[0], bad)
    assert proc.returncode == 0, proc.stderr
    assert f"TraceError {bad} {bad}: the gzip stream is truncated or corrupt" in proc.stdout


@needs_fork
def test_a_worker_that_dies_is_reported_with_the_file(tmp_path: Path) -> None:
    code = (
        "import os, signal, sys\nfrom pathlib import Path\n"
        "from dsprof.trace.workers import TraceWorkers\nfrom dsprof.core.errors import TraceError\n"
        "w = TraceWorkers([Path(sys.argv[1])])\nos.kill(w._running[0].pid, signal.SIGKILL)\n"
        "try:\n    w.frames()\nexcept TraceError as e:\n    print(e)\n"
    )
    proc = _run(code, RANK0)
    assert proc.returncode == 0, proc.stderr
    assert f"{RANK0}: the parse worker died without an answer (killed by SIGKILL" in proc.stdout


def _interrupt_analyze(paths: list[Path], after_fork_s: float) -> tuple[int, bytes, list[int]]:
    """Start `dsprof analyze paths`, Ctrl-C it after_fork_s after its first worker appears;
    (exit status, stderr, worker pids)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsprof", "analyze", *map(str, paths)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, ENV_WORKERS: "2"},  # the same pace on any number of cores
    )
    deadline = time.monotonic() + 20
    workers: list[int] = []
    while not workers and time.monotonic() < deadline:  # wait for the fork
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        workers = [int(p) for p in children.read_text().split()] if children.exists() else []
        time.sleep(0.01)
    assert workers, "no parse worker was seen"
    time.sleep(after_fork_s)
    assert any(_state(pid) not in ("gone", "Z") for pid in workers), "the parse was already done"
    os.killpg(proc.pid, signal.SIGINT)
    status = proc.wait(timeout=30)  # not communicate(): a stray worker would hold stderr open
    assert proc.stderr is not None
    return status, proc.stderr.read(), workers


OWLV2 = DATA / "tracelens" / "google_owlv2-large-patch14-ensemble__1016001.json.gz"


@needs_fork
def test_ctrl_c_while_waiting_for_the_workers_ends_them() -> None:
    # twelve parses (~3 s on two workers): by 2 s the parent has its imports (~0.4 s) done and
    # waits for the answers
    status, err, workers = _interrupt_analyze([OWLV2] * 12, after_fork_s=2.0)
    assert status == 130, err
    assert b"dsprof: aborted" in err
    assert [pid for pid in workers if _state(pid) not in ("gone", "Z")] == []


@needs_fork
def test_ctrl_c_while_importing_leaves_no_worker_behind() -> None:
    status, err, workers = _interrupt_analyze([OWLV2], after_fork_s=0.0)
    # pandas/pyarrow interrupted mid-import may end the process by the signal itself
    assert status in (130, -signal.SIGINT), err
    assert [pid for pid in workers if _state(pid) not in ("gone", "Z")] == []


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except OSError:
        return "gone"


def test_trace_error_pickles_with_its_path(tmp_path: Path) -> None:
    e = pickle.loads(pickle.dumps(TraceError("the file is empty", path=tmp_path / "a.json")))
    assert isinstance(e, TraceError) and e.path == tmp_path / "a.json"
    assert str(e) == f"{tmp_path / 'a.json'}: the file is empty"


@needs_fork
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_end_with_their_parent_however_it_ends(sig: int) -> None:
    """A parent killed from outside (a CI job's timeout) takes its parse workers with it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsprof", "analyze", *map(str, [OWLV2] * 12)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, ENV_WORKERS: "2"},
    )
    deadline = time.monotonic() + 20
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() < deadline:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        workers = [int(p) for p in children.read_text().split()] if children.exists() else []
        time.sleep(0.01)
    assert len(workers) == 2, "the parse workers were not seen"
    time.sleep(0.3)  # parsing: twelve traces take the workers several seconds
    assert all(_state(pid) not in ("gone", "Z") for pid in workers)
    os.kill(proc.pid, sig)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_state(p) not in ("gone", "Z") for p in workers):
        time.sleep(0.05)
    assert [pid for pid in workers if _state(pid) not in ("gone", "Z")] == []


def test_a_failure_is_data_with_the_message_an_in_process_parse_gives(tmp_path: Path) -> None:
    """parse_or_failure answers the same ParseFailure a worker sends (no exception's repr)."""
    from dsprof.trace.parse import ParseFailure, parse_or_failure

    bad = tmp_path / "bad.json"
    bad.write_text('{"traceEvents": [{"ph": "X", "name": tru}]}')
    answer = parse_or_failure(bad)
    assert isinstance(answer, ParseFailure)
    assert answer.message.startswith("invalid JSON at line 1, column 39 of the file (byte 38)")
    assert str(answer.error()) == f"{bad}: {answer.message}"
    assert pickle.loads(pickle.dumps(answer)) == answer
    folder = parse_or_failure(tmp_path)
    assert isinstance(folder, ParseFailure) and "cannot" in folder.message
