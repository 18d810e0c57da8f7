"""Fuzzing the trace reader: every mutant of a real trace gets a clean error or a sound answer.

Hypothesis draws the seed and the mutations (tests/fuzz_support.py). By default each property
runs a fixed, derandomised set of examples sized for CI (about a minute in all on 2 cores);
DSPROF_FUZZ_EXAMPLES=N runs N examples each with fresh randomness, and DSPROF_FUZZ_SAVE=DIR
keeps every failing input there (minimal ones go to tests/data/fuzz/regressions/).
"""

from __future__ import annotations

import gzip
import os
import random
import subprocess
import sys
from pathlib import Path

import msgspec
import orjson
import pytest
from fuzz_support import (
    REGRESSIONS,
    SEEDS,
    analyze,
    check_contract,
    mutant,
    mutate_bytes,
    seed_bytes,
    write,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsprof.core.errors import TraceError
from dsprof.trace.reader import TraceReader

EXAMPLES = int(os.environ.get("DSPROF_FUZZ_EXAMPLES", "0"))
SAVE = os.environ.get("DSPROF_FUZZ_SAVE")


def fuzz_settings(default: int) -> settings:
    return settings(
        max_examples=EXAMPLES or default,
        derandomize=not EXAMPLES,  # CI: the same examples every run
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _keep(data: bytes, name: str) -> None:
    if SAVE:
        Path(SAVE).mkdir(parents=True, exist_ok=True)
        (Path(SAVE) / f"{abs(hash(data)):x}-{name}").write_bytes(data)


def _read(path: Path, *, fast: bool, chunk: int) -> tuple[object, ...]:
    reader = TraceReader(path, chunk_bytes=chunk)
    reader.fast = fast
    try:
        events = [e for c in reader.chunks() for e in c]
    except TraceError as e:
        return ("error", str(e))
    except Exception as e:  # a crash: the assertions below fail on it (and keep the input)
        return ("crash", f"{type(e).__name__}: {e}")
    meta = orjson.dumps(reader.metadata, option=orjson.OPT_SORT_KEYS)
    return ("ok", msgspec.json.encode(events), reader.events_total, reader.not_objects, meta)


# refusals that say the text is not JSON (the others are about valid JSON that is no trace)
JSON_PROBLEMS = ("invalid JSON", "the JSON ends", "truncated", "not UTF-8")


@fuzz_settings(250)
@given(
    seed=st.sampled_from(SEEDS),
    rng=st.randoms(use_true_random=False),
    chunk=st.integers(min_value=16, max_value=5000),
)
def test_reader_refuses_exactly_what_orjson_refuses(
    tmp_path_factory: pytest.TempPathFactory, seed: Path, rng: random.Random, chunk: int
) -> None:
    """Byte mutants: the fast and the exact path, with any chunk size, read the same events or
    give the same refusal, and refuse a text as invalid JSON exactly when orjson does."""
    data = seed_bytes(seed)
    for _ in range(rng.randrange(1, 3)):
        data = mutate_bytes(data, rng)
    path = tmp_path_factory.mktemp("exact") / "t.json"
    path.write_bytes(data)
    results = {
        (fast, c): _read(path, fast=fast, chunk=c)
        for fast in (True, False)
        for c in (1 << 20, chunk)
    }
    try:
        orjson.loads(data[3:] if data.startswith(b"\xef\xbb\xbf") else data)
        valid = True
    except orjson.JSONDecodeError:
        valid = False
    ok = {r[0] == "ok" for r in results.values()}
    try:
        assert not [r for r in results.values() if r[0] == "crash"], results
        assert len(ok) == 1, f"the paths disagree: {results}"
        if ok == {"ok"}:
            assert len(set(results.values())) == 1, "the paths read different events"
            assert valid, "accepted text orjson refuses"
        elif valid:  # valid JSON may still be no trace, but it is not refused as bad JSON
            message = str(next(iter(results.values()))[1])
            assert not any(p in message for p in JSON_PROBLEMS), f"refused valid JSON: {message}"
    except AssertionError:
        _keep(data, "exact.json")
        raise


@fuzz_settings(120)
@given(
    seed=st.sampled_from(SEEDS),
    rng=st.randoms(use_true_random=False),
    gz=st.booleans(),
)
def test_mutants_get_a_sound_answer_or_a_clean_error(
    tmp_path_factory: pytest.TempPathFactory, seed: Path, rng: random.Random, gz: bool
) -> None:
    """JSON- and byte-level mutants through `dsprof analyze --json`: exit 0 with no failed
    analyzer, impacts in 0..1 and durations within the trace, or exit 2 with one line."""
    data = mutant(seed, rng)
    path = write(tmp_path_factory.mktemp("contract") / ("t.json.gz" if gz else "t.json"), data)
    code, out, err = analyze(path)
    try:
        check_contract([path], code, out, err)
    except AssertionError:
        _keep(data, "contract.json")
        raise


@fuzz_settings(20)
@given(seed=st.sampled_from(SEEDS), rng=st.randoms(use_true_random=False))
def test_a_trace_given_twice_is_analysed_once(
    tmp_path_factory: pytest.TempPathFactory, seed: Path, rng: random.Random
) -> None:
    """The same mutant under two names: the contract holds, and a document names the repeat."""
    data = mutant(seed, rng)
    folder = tmp_path_factory.mktemp("twice")
    a, b = write(folder / "a.json", data), write(folder / "b.json", data)
    code, out, err = analyze(a, b)
    check_contract([a, b], code, out, err)
    if code == 0:
        assert '"duplicate-trace"' in out
        assert "of 2/2 ranks" not in out


def _regressions() -> list[Path]:
    return sorted(p for p in REGRESSIONS.glob("*") if p.name.endswith((".json", ".json.gz")))


@pytest.mark.parametrize("path", _regressions(), ids=lambda p: p.name)
def test_regression_cases(path: Path) -> None:
    """Inputs that once broke the contract (found by fuzzing, or in the issue that asked for it)."""
    code, out, err = analyze(path)
    check_contract([path], code, out, err)


def test_regression_cases_are_present() -> None:
    assert len(_regressions()) >= 20


@pytest.mark.parametrize(
    "name",
    ["args_list.json", "name_null.json", "invalid_comment.json", "truncated.json.gz"],
)
def test_workers_and_in_process_give_the_same_line(name: str) -> None:
    """The real CLI, parse workers on and off: the same exit code and the same message."""
    path = REGRESSIONS / name
    runs = []
    for workers in ("2", "0"):
        proc = subprocess.run(
            [sys.executable, "-m", "dsprof", "analyze", "--json", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "DSPROF_PARSE_WORKERS": workers},
            check=False,
        )
        runs.append((proc.returncode, proc.stderr))
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "Error:" not in proc.stderr.replace("dsprof: error:", ""), proc.stderr
    assert runs[0] == runs[1]


READER_NOTICES = {
    "events-dropped",
    "window-outliers-cut",
    "metadata-ignored",
    "unknown-schema-version",
    "duplicate-trace",
}


def test_seeds_are_real_traces() -> None:
    """Each seed reads without a reader's notice: mutations, not the seeds, make the faults."""
    for seed in SEEDS:
        code, out, err = analyze(seed)
        assert code == 0, err
        codes = {n["code"] for n in orjson.loads(out)["notices"]}
        assert not codes & READER_NOTICES, (seed.name, codes)
    assert len(SEEDS) >= 6


def test_gzip_of_a_mutant_reads_like_the_plain_file(tmp_path: Path) -> None:
    rng = random.Random(7)
    for seed in SEEDS:
        data = mutant(seed, rng)
        plain = write(tmp_path / "m.json", data)
        gz = tmp_path / "m.json.gz"
        gz.write_bytes(gzip.compress(data))
        a = analyze(plain)
        b = analyze(gz)
        assert a[0] == b[0]
        if a[0] == 0:
            assert _summary(a[1]) == _summary(b[1])


def _summary(out: str) -> list[tuple[str, str, float]]:
    return [(f["category"], f["severity"], f["impact"]) for f in orjson.loads(out)["findings"]]
