"""A script behaves the same under `dsprof run` as under plain python: the same exit status (a
signal included), the same bytes on stdout and on stderr, the same files.

Each script (tests/data/parity/, tests/data/shapes/) runs twice: `python script.py ARGS` and
`python -m dsprof run -q --out DIR script.py ARGS`, both from a folder outside the checkout.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PARITY = Path(__file__).parent / "data" / "parity"
SHAPES = Path(__file__).parent / "data" / "shapes"
# stdout buffered as python's is on a pipe, whatever the environment running the tests says
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | {"HF_HUB_OFFLINE": "1"}


def both(tmp_path: Path, script: Path, *args: str, stdin: bytes | None = None, options=()):
    """(plain, under dsprof) CompletedProcess of the script run each way from tmp_path."""
    plain = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path, input=stdin, capture_output=True, env=ENV, timeout=300,
    )  # fmt: skip
    dsprof = subprocess.run(
        [sys.executable, "-m", "dsprof", "run", "-q", "--no-analyze", *options,
         "--out", str(tmp_path / "runs"), str(script), *args],
        cwd=tmp_path, input=stdin, capture_output=True, env=ENV, timeout=300,
    )  # fmt: skip
    return plain, dsprof


def assert_same(plain: subprocess.CompletedProcess, dsprof: subprocess.CompletedProcess) -> None:
    assert dsprof.returncode == plain.returncode, dsprof.stderr.decode()[-3000:]
    assert dsprof.stdout == plain.stdout
    assert dsprof.stderr == plain.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("code", "3"),
        ("exit-message",),  # sys.exit("...") prints the message, exits 1
        ("raise",),  # the traceback as python prints it, no dsprof frames
        ("sigint",),  # uncaught KeyboardInterrupt: traceback, then the process ends by SIGINT
        ("signal", "SIGKILL"),
        ("os-exit",),  # stdout's buffer is lost (dsprof must not make the script unbuffered)
    ],
    ids=lambda a: "-".join(a),
)
def test_exit_status_and_both_streams_are_the_scripts(tmp_path, args):
    plain, dsprof = both(tmp_path, PARITY / "exits.py", *args)
    assert plain.stdout.startswith(b"calls 4 (2, 8)")
    assert_same(plain, dsprof)
    if args[0] in ("sigint", "signal"):
        assert plain.returncode < 0  # ended by the signal, under dsprof too


def test_big_output_passes_byte_for_byte(tmp_path):
    plain, dsprof = both(tmp_path, PARITY / "big_output.py", "3")
    assert len(plain.stdout) > 3_000_000 and b"\xe9\xff" in plain.stdout
    assert_same(plain, dsprof)
    (run,) = list((tmp_path / "runs").iterdir())
    assert (run / "logs" / "stdout.log").read_bytes() == plain.stdout


def test_stdin_and_written_files_are_the_same(tmp_path):
    lines = "".join(" ".join(str((i * j) % 5) for j in range(16)) + "\n" for i in range(25))
    plain, dsprof = both(tmp_path, SHAPES / "stdin_fed.py", stdin=lines.encode())
    assert plain.stdout == b"requests 25\n"
    assert_same(plain, dsprof)


def ctrl_c(cmd: list[str], cwd: Path) -> tuple[int, bytes, bytes]:
    """Start cmd in its own process group, Ctrl-C the group once it is busy, and wait."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    time.sleep(1.0)  # some steps (under dsprof: inside the trace window or past it)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, b"ready\n" + out, err


@pytest.mark.parametrize("catch", [False, True], ids=["uncaught", "caught"])
def test_ctrl_c_ends_the_script_as_it_would_without_dsprof(tmp_path, catch):
    args = ["catch"] if catch else []
    script = str(PARITY / "ctrl_c.py")
    plain = ctrl_c([sys.executable, script, *args], tmp_path)
    dsprof = ctrl_c(
        [sys.executable, "-m", "dsprof", "run", "-q", "--no-analyze", "--out", "runs", script,
         *args],
        tmp_path,
    )  # fmt: skip
    assert dsprof[0] == plain[0] == (0 if catch else -signal.SIGINT)
    assert dsprof[1] == plain[1]
    # the line the Ctrl-C landed on may differ; the traceback's shape may not
    last_line = dsprof[2].splitlines()[-1:]
    assert last_line == plain[2].splitlines()[-1:] == ([] if catch else [b"KeyboardInterrupt"])
    assert dsprof[2].startswith(b"Traceback") == plain[2].startswith(b"Traceback")


def test_on_a_terminal_the_scripts_stdout_is_line_buffered(tmp_path):
    # python line-buffers stdout on a terminal: a prompt printed without flush is shown before
    # the script waits for its answer (under dsprof the script's stdout is a pipe to dsprof)
    main, sub = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsprof", "run", "-q", "--no-analyze", "--out", "runs",
         str(PARITY / "tty_prompt.py")],
        cwd=tmp_path, env=ENV, stdin=sub, stdout=sub, stderr=sub,
    )  # fmt: skip
    os.close(sub)
    seen = b""
    try:
        deadline = time.monotonic() + 180
        while b"name?" not in seen and time.monotonic() < deadline:
            if select.select([main], [], [], 1.0)[0]:
                seen += os.read(main, 4096)
        assert b"name?" in seen, seen  # a block-buffered stdout would show nothing yet
        os.write(main, b"dsprof\n")
        while proc.poll() is None or select.select([main], [], [], 0.2)[0]:
            if select.select([main], [], [], 1.0)[0]:
                try:
                    seen += os.read(main, 4096)
                except OSError:  # the terminal closed: every process holding it has ended
                    break
        assert proc.wait(timeout=120) == 0
        assert b"hello dsprof" in seen
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)


@pytest.mark.slow
def test_sentence_transformers_on_the_shipped_minilm(tmp_path):
    # tokenizer, batching, the BERT model, pooling: the embeddings printed are the same digits
    plain, dsprof = both(tmp_path, PARITY / "minilm_encode.py", "24", options=("--no-trace",))
    assert plain.returncode == 0 and plain.stdout.startswith(b"(24, 384)")
    assert dsprof.returncode == 0 and dsprof.stdout == plain.stdout

    def without_progress(err: bytes) -> list[bytes]:  # tqdm's rates differ from run to run
        return [line for line in err.splitlines() if b"it/s]" not in line]

    assert without_progress(dsprof.stderr) == without_progress(plain.stderr)
    (run,) = list((tmp_path / "runs").iterdir())
    assert (run / "metrics" / "steps.parquet").is_file()  # the model's calls were steps
