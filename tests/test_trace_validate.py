"""The validation layer (dsprof.trace.validate): what fails is dropped, counted and said in notices."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from trace_synthetic import TraceBuilder, trace_run

from dsprof.analyzers import analyze_run
from dsprof.core.errors import TraceError
from dsprof.trace import load_trace


def _healthy(tmp_path: Path, name: str = "t.json", **meta: object) -> Path:
    tb = TraceBuilder(base_ns=1_000_000_000)
    tb.meta.update(meta)
    for i in range(3):
        tb.step(i, i * 100.0, 100.0)
        tb.kernel("gemm_kernel", i * 100.0 + 10, 80.0, launch_ts=i * 100.0 + 5)
    return tb.write(tmp_path / name)


@pytest.mark.parametrize("version", [99, "abc", None, 1.5], ids=["99", "text", "null", "float"])
def test_unknown_schema_version_is_a_notice(tmp_path: Path, version: object) -> None:
    tf = load_trace(_healthy(tmp_path, schemaVersion=version))
    assert [n.code for n in tf.notices] == ["unknown-schema-version"]
    assert str(tf.path) in tf.notices[0].message
    doc = analyze_run(trace_run(tf.path))
    assert [n.code for n in doc.notices] == ["unknown-schema-version"]


def test_known_schema_version_says_nothing(tmp_path: Path) -> None:
    assert load_trace(_healthy(tmp_path)).notices == []


def test_unknown_schema_version_warns_on_stderr_and_goes_on(tmp_path: Path) -> None:
    path = _healthy(tmp_path, schemaVersion=99)
    proc = subprocess.run(
        [sys.executable, "-m", "dsprof", "analyze", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith(f"dsprof: warning: {path}: schemaVersion 99 is not one")
    doc = json.loads(proc.stdout)
    assert [n["code"] for n in doc["notices"]] == ["unknown-schema-version"]


def _events(n: int, t0: float = 1_707_417_525_000_000.0) -> list[dict]:
    return [
        {"ph": "X", "cat": "cpu_op", "name": "aten::add", "pid": 1, "tid": 1, "ts": t0 + 10 * i,
         "dur": 5, "args": {"External id": i}}
        for i in range(n)
    ]  # fmt: skip


def _write(tmp_path: Path, events: list, **meta: object) -> Path:
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"schemaVersion": 1, **meta, "traceEvents": events}))
    return p


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("name", None, "a name that is not a string"),
        ("name", ["x"], "a name that is not a string"),
        ("ts", "abc", "a ts that is missing, not a number or out of range"),
        ("ts", [], "a ts that is missing, not a number or out of range"),
        ("ts", 1e17, "a ts that is missing, not a number or out of range"),
        ("dur", -5, "a negative dur"),
        ("dur", None, "a dur that is missing, not a number or out of range"),
        ("pid", 2**64, "a pid or tid that is not an integer"),
        ("tid", [1], "a pid or tid that is not an integer"),
        ("args", [1], "args that are not an object"),
        ("cat", {"a": 1}, "a cat that is not a string"),
    ],
)  # fmt: skip
def test_an_invalid_field_drops_its_event_and_says_why(
    tmp_path: Path, field: str, value: object, why: str
) -> None:
    events = _events(10)
    events[3][field] = value
    tf = load_trace(_write(tmp_path, events))
    assert len(tf.cpu) == 9
    (notice,) = tf.notices
    assert notice.code == "events-dropped"
    assert notice.message == f"{tf.path}: 1 of 10 events dropped: 1 with {why}"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Input Dims", [[1e30, 5]]),
        ("Input Dims", [[-1, 5]]),
        ("Input Dims", 7),
        ("Input type", {"a": 1}),
        ("External id", 1.5),
        ("Concrete Inputs", "x"),
        ("Sequence number", 1.5),
    ],
)
def test_an_invalid_arg_drops_its_event(tmp_path: Path, key: str, value: object) -> None:
    events = _events(10)
    events[3]["args"][key] = value
    tf = load_trace(_write(tmp_path, events))
    assert len(tf.cpu) == 9
    assert "1 of 10 events dropped" in tf.notices[0].message


def test_kernel_launch_values_out_of_range(tmp_path: Path) -> None:
    tb = TraceBuilder(base_ns=0)
    for i, args in enumerate(
        [
            {"blocks per SM": -1e6},
            {"est. achieved occupancy %": 1e9},
            {"grid": ["a", 1, 1]},
            {"grid": [2**40, 1, 1]},
            {"registers per thread": [64]},
            *[{"grid": [4, 1, 1], "blocks per SM": 0.5}] * 6,
        ]
    ):
        tb.kernel("k", 1000.0 + 100 * i, 10.0, **args)
    tf = load_trace(tb.write(tmp_path / "k.json"))
    assert len(tf.kernels) == 6 and set(tf.kernels["grid_blocks"]) == {4}
    assert "5 of 11 events dropped: 5 with a grid, block, registers or occupancy" in (
        tf.notices[0].message
    )


def test_too_many_invalid_events_refuse_the_trace(tmp_path: Path) -> None:
    events = _events(10)
    for e in events[:6]:
        e["ts"] = "soon"
    with pytest.raises(TraceError, match=r"6 of 10 events are invalid .*too few are left"):
        load_trace(_write(tmp_path, events))


def test_an_event_far_from_the_rest_is_cut_not_the_window(tmp_path: Path) -> None:
    events = _events(100)
    events[50]["ts"] = 0
    tf = load_trace(_write(tmp_path, events))
    assert len(tf.cpu) == 99
    assert tf.window_ns < 1_000_000_000
    (notice,) = tf.notices
    assert notice.code == "window-outliers-cut"
    assert "1 events lie far outside the rest of the trace (up to" in notice.message


def test_a_long_duration_that_ends_far_away_is_cut(tmp_path: Path) -> None:
    events = _events(100)
    events[10]["dur"] = 1e12  # eleven days in a trace of a millisecond
    tf = load_trace(_write(tmp_path, events))
    assert len(tf.cpu) == 99 and tf.window_ns < 1_000_000_000


def test_a_real_pause_is_not_an_outlier(tmp_path: Path) -> None:
    """Initialisation 30 s before the steady state (the AlexNet benchmark trace's shape), and
    a sleep of 20 minutes between two busy stretches: nothing is cut."""
    init = _events(5, t0=1_707_417_000_000_000.0)
    init[0]["dur"] = 30_000_000  # one op spans the initialisation
    work = _events(200, t0=1_707_417_030_500_000.0)
    tf = load_trace(_write(tmp_path, [*init, *work]))
    assert len(tf.cpu) == 205 and tf.notices == []
    later = _events(200, t0=1_707_417_030_500_000.0 + 20 * 60e6)
    tf = load_trace(_write(tmp_path, [*work, *later]))
    assert len(tf.cpu) == 400 and tf.notices == []


def test_a_step_of_zero_length_is_dropped(tmp_path: Path) -> None:
    events = _events(20)
    events.append({**events[0], "cat": "user_annotation", "name": "ProfilerStep#3", "dur": 0})
    events.append({**events[0], "cat": "user_annotation", "name": "ProfilerStep#4", "dur": 50})
    tf = load_trace(_write(tmp_path, events))
    assert tf.steps["step"].tolist() == [4]
    assert "with a ProfilerStep of zero length" in tf.notices[0].message


@pytest.mark.parametrize(
    ("meta", "said", "check"),
    [
        ({"deviceProperties": 5}, "deviceProperties 5 is not a list", lambda tf: tf.device_properties == []),
        ({"deviceProperties": [{"name": "A100", "computeMajor": "abc", "numSms": -3}, 7]},
         "3 deviceProperties entries or fields of the wrong type",
         lambda tf: tf.device_properties == [{"name": "A100"}]),
        ({"distributedInfo": {"rank": "x", "world_size": 2}}, 'distributedInfo rank "x" is not a rank',
         lambda tf: tf.rank is None and tf.distributed == {"world_size": 2}),
        ({"distributedInfo": {"rank": True}}, "distributedInfo rank True is not a rank", lambda tf: tf.rank is None),
        ({"baseTimeNanoseconds": 2**63}, "baseTimeNanoseconds 9223372036854775808 is not a time",
         lambda tf: tf.base_ns == 0),
        ({"baseTimeNanoseconds": "x"}, 'baseTimeNanoseconds "x" is not a time', lambda tf: tf.base_ns == 0),
    ],
    ids=["props-not-list", "props-fields", "rank-text", "rank-bool", "base-2^63", "base-text"],
)  # fmt: skip
def test_metadata_of_the_wrong_type_is_left_out(
    tmp_path: Path, meta: dict, said: str, check
) -> None:
    tf = load_trace(_write(tmp_path, _events(10), **meta))
    assert len(tf.cpu) == 10
    (notice,) = tf.notices
    assert notice.code == "metadata-ignored" and said in notice.message
    assert check(tf)


def test_analyzers_see_no_invalid_value(tmp_path: Path) -> None:
    """The issue's crashes inside a successful run: dur 0 steps, [memory] only, bad props."""
    tb = TraceBuilder(base_ns=0)
    tb.step(1, 0.0, 0.0)
    tb.memory(5.0, 100, 100, 200)
    tb.devices = [{"name": "NVIDIA A100-SXM4-80GB", "computeMajor": "abc", "numSms": 0}]
    doc = analyze_run(trace_run(tb.write(tmp_path / "m.json")))
    assert doc.analyzers_failed == {}


def test_two_traces_of_one_rank_are_refused_and_a_repeat_is_said(tmp_path: Path) -> None:
    """The issue's "worst of 2/2 ranks" on one file given twice, and a straggler between two
    unrelated traces that both said rank 0."""
    from dsprof.analyzers import analyze_traces

    a = _write(tmp_path, _events(50), distributedInfo={"rank": 0, "world_size": 2})
    b = tmp_path / "other.json"
    b.write_text(json.dumps({"distributedInfo": {"rank": 0}, "traceEvents": _events(80, t0=1e15)}))
    with pytest.raises(TraceError, match=r"records rank 0 \(distributedInfo\), as .* does"):
        analyze_traces([a, b])
    copy = tmp_path / "copy.json"
    copy.write_bytes(a.read_bytes())
    doc = analyze_traces([a, copy])
    assert [n.code for n in doc.notices if n.code == "duplicate-trace"] == ["duplicate-trace"]
    assert not any("ranks" in f.title for f in doc.findings)
