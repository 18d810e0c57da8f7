"""The streaming trace reader: bad input becomes a TraceError naming the file; chunking is exact."""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from trace_synthetic import TraceBuilder

from dsprof.core.errors import TraceError
from dsprof.trace import load_trace, scan
from dsprof.trace.reader import CHUNK_BYTES, TraceReader

DATA = Path(__file__).parent / "data" / "traces"


def _small_trace(tmp_path: Path, name: str = "t.json") -> Path:
    tb = TraceBuilder(base_ns=1_000_000_000)
    tb.step(1, 0.0, 100.0)
    tb.op(
        "aten::mm",
        10.0,
        20.0,
        **{"Input Dims": [[4, 8], [8, 16]], "Input type": ["float", "float"]},
    )
    # braces, brackets, quotes and backslashes inside strings must not confuse the bracket scan
    tb.op('weird {"name": [x]} \\" \\\\', 40.0, 1.0)
    tb.kernel("gemm_kernel", 35.0, 30.0, launch_ts=15.0)
    return tb.write(tmp_path / name)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b'{"schemaVersion": 1, "deviceProperties": []}', "no traceEvents"),
        (b'{"traceEvents": [', "truncated"),
        (b'{"traceEvents": [{"ph": "X", "cat": "cpu_op", "name": "a", "ts": 1, "dur": 2', "truncated"),
        (b'{"traceEvents": [{"ph": "X", "name": tru}]}', "invalid JSON"),
        (b'{"traceEvents": []}', "no events"),
        (b'{"traceEvents": [{"ph": "M", "name": "process_name", "pid": 1}]}', "no CPU or GPU events"),
        (b'{"traceEvents": {"a": 1}}', "not a JSON array"),
        (b"hello", "not a JSON trace"),
    ],
    ids=["empty", "blank", "no-events-key", "truncated-open", "truncated-event", "bad-json", "empty-array",
         "metadata-only", "events-not-array", "not-json"],
)  # fmt: skip
def test_bad_input_names_file_and_problem(tmp_path: Path, content: bytes, problem: str) -> None:
    p = tmp_path / "bad.json"
    p.write_bytes(content)
    with pytest.raises(TraceError) as e:
        load_trace(p)
    assert str(p) in str(e.value)
    assert problem in str(e.value)


def test_truncated_gzip(tmp_path: Path) -> None:
    good = gzip.compress((DATA / "hta" / "event_sync_trace.json.gz").read_bytes())
    p = tmp_path / "cut.json.gz"
    p.write_bytes(gzip.compress(gzip.decompress(good))[:-40])
    with pytest.raises(TraceError, match="gzip stream is truncated or corrupt"):
        load_trace(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot open"):
        load_trace(tmp_path / "nope.json")


def test_strings_with_brackets_and_escapes(tmp_path: Path) -> None:
    tf = load_trace(_small_trace(tmp_path))
    assert tf.cpu_ops["name"].astype(str).tolist() == ["aten::mm", 'weird {"name": [x]} \\" \\\\']
    assert tf.metadata["baseTimeNanoseconds"] == 1_000_000_000


def test_time_base_and_units(tmp_path: Path) -> None:
    tf = load_trace(_small_trace(tmp_path))
    mm = tf.cpu_ops.iloc[0]
    assert mm["ts_ns"] == 1_000_000_000 + 10_000
    assert mm["dur_ns"] == 20_000
    assert mm["end_ns"] == 1_000_000_000 + 30_000
    assert tf.window == (1_000_000_000, 1_000_000_000 + 100_000)


@pytest.mark.parametrize("chunk", [64, 257, 4096], ids=["64B", "257B", "4KiB"])
def test_chunk_size_does_not_change_frames(chunk: int) -> None:
    path = DATA / "hta" / "event_sync_trace.json.gz"
    whole = load_trace(path)
    chunked = load_trace(path, chunk_bytes=chunk)
    for table in ("cpu", "runtime", "gpu", "memory"):
        a, b = getattr(whole, table), getattr(chunked, table)
        assert a.astype(str).equals(b.astype(str)), table
    assert whole.metadata == chunked.metadata


def test_gz_and_plain_agree(tmp_path: Path) -> None:
    plain = load_trace(_small_trace(tmp_path, "a.json"))
    gz = load_trace(_small_trace(tmp_path, "a.json.gz"))
    assert plain.gpu.astype(str).equals(gz.gpu.astype(str))


def test_bare_array_trace(tmp_path: Path) -> None:
    p = tmp_path / "bare.json"
    p.write_text(
        '[{"ph": "X", "cat": "cpu_op", "name": "aten::add", "pid": 1, "tid": 1, "ts": 5, "dur": 3}]'
    )
    tf = load_trace(p)
    assert len(tf.cpu_ops) == 1 and tf.cpu_ops["dur_ns"].iloc[0] == 3000


# counts from /work/shared/traces/README.md ("Event counts by cat")
@pytest.mark.parametrize(
    ("rel", "kernels", "cpu_ops", "memory"),
    [
        ("hta/rank0.json.gz", 6080, 25185, 0),
        ("hta/test.json.gz", 9876, 31236, 0),
        (
            "kineto/resnet50_num_workers_0/worker0.1623143089861.pt.trace.json.gz",
            8772,
            23646,
            12838,
        ),
        ("tracelens/google_owlv2-large-patch14-ensemble__1016001.json.gz", 4330, 24378, 13474),
        ("param/dlrm_kineto/worker1_step_12.1694128201556.pt.trace.json", 310, 1633, 0),
    ],
    ids=["hta-rank0", "hta-test", "kineto-2021", "owlv2-h100", "dlrm-rank1"],
)
def test_real_traces_event_counts(
    rel: str, kernels: int, cpu_ops: int | None, memory: int | None
) -> None:
    tf = load_trace(DATA / rel)
    assert len(tf.kernels) == kernels
    if cpu_ops is not None:
        assert len(tf.cpu_ops) == cpu_ops
    if memory is not None:
        assert len(tf.memory) == memory
    assert tf.has_gpu_activity


def test_legacy_2021_schema_maps_categories() -> None:
    tf = load_trace(DATA / "kineto/resnet50_num_workers_0/worker0.1623143089861.pt.trace.json.gz")
    assert set(tf.gpu["cat"].astype(str)) == {"kernel", "gpu_memcpy", "gpu_memset"}
    assert len(tf.steps) == 6 and tf.steps["step"].tolist() == [5, 6, 7, 8, 9, 10]
    # legacy string tids ("stream 7") become ints
    assert set(tf.kernels["tid"]) == {7}
    assert tf.device_name() == "Tesla V100-DGXS-32GB"


def test_trace_and_analyzers_import_without_torch() -> None:
    code = (
        "import sys, dsprof.trace, dsprof.analyzers, dsprof.trace.roofline, dsprof.trace.devices;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _events(path: Path, fast: bool, chunk: int = CHUNK_BYTES) -> tuple[list, int]:
    reader = TraceReader(path, chunk_bytes=chunk)
    reader.fast = fast
    events = [e for c in reader.chunks() for e in c]
    return events, reader.events_total


@pytest.mark.parametrize(
    "rel",
    [
        "tracelens/google_owlv2-large-patch14-ensemble__1016001.json.gz",  # indented, "M" at the end
        "hta/rank0.json.gz",
        "kineto/resnet50_num_workers_0/worker0.1623143089861.pt.trace.json.gz",  # 2021 schema
        "tracelens/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz",
        "param/dlrm_kineto/worker1_step_12.1694128201556.pt.trace.json",
    ],
)
def test_fast_path_reads_what_the_bracket_scan_reads(rel: str) -> None:
    assert _events(DATA / rel, fast=True) == _events(DATA / rel, fast=False)


def test_fast_path_keeps_events_written_by_other_writers(tmp_path: Path) -> None:
    """Events whose first key is not "ph", or with "ph" keys nested in args, are never lost."""
    events = [
        {"ph": "X", "cat": "cpu_op", "name": "a", "pid": 1, "tid": 1, "ts": 1, "dur": 1},
        {"ph": "f", "cat": "ac2g", "name": "flow", "id": 1, "pid": 1, "tid": 1, "ts": 2},
        # another writer's key order, right after a skipped flow event
        {"name": "b", "ph": "X", "cat": "cpu_op", "pid": 1, "tid": 1, "ts": 3, "dur": 1},
        {"ph": "X", "cat": "cpu_op", "name": 'c {"ph": "s"}', "pid": 1, "tid": 1, "ts": 4,
         "dur": 1, "args": {"nested": {"ph": "X", "cat": "cpu_op"}}},
        {"ph": "X", "cat": "python_function", "name": "f", "pid": 1, "tid": 1, "ts": 5, "dur": 1},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaEventQuery", "pid": 1, "tid": 1, "ts": 6,
         "dur": 1},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1,
         "ts": 7, "dur": 1},
    ] * 50  # fmt: skip
    p = tmp_path / "mixed.json"
    p.write_bytes(orjson.dumps({"traceEvents": events}, option=orjson.OPT_INDENT_2))
    for chunk in (64, 700, 1 << 20):
        fast, total = _events(p, fast=True, chunk=chunk)
        assert (fast, total) == _events(p, fast=False, chunk=chunk)
        assert total == len(events)
        assert [e.name for e in fast[:4]] == ["a", "b", 'c {"ph": "s"}', "cudaLaunchKernel"]


def _kernel_events(n: int) -> list[dict]:
    return [
        {"ph": "X", "cat": "cpu_op", "name": f"aten::op{i % 7}", "pid": 1, "tid": 1,
         "ts": 1_000 + 10 * i, "dur": 5, "args": {"External id": i}}
        for i in range(n)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        (b'{"traceEvents": [\n{"ph": "X"},\n// note\n{"ph": "X"}]}', "line 3, column 1", "invalid character"),
        (b'{"traceEvents": [\n{"ph": "X"}\n{"ph": "X"}]}', "line 3, column 1", "expected ','"),
        (b'{"traceEvents": [\n{"ph": "X"}, junk, {"ph": "X"}]}', "line 2, column 14", "invalid character"),
        (b'{"traceEvents": [\n{"ph": "X"},]}', "line 2, column 13", "trailing comma"),
        (b'[{"ph": "X"}]\ngarbage', "line 2, column 1", "trailing characters"),
        (b'{"traceEvents": [{"ph": "X"}], "x": tru}', "line 1, column 41", ""),
        (b'{"traceEvents": [{"ph": "f", "cat": "ac2g", "id": 1e999}]}', "line 1, column 51", "infinity"),
        (b'{"traceEvents": [{"ph": "f", "cat": "ac2g", "name": "\xff"}]}', "line 1, column 54", "UTF-8"),
        # kept events: an arg the engine does not read is skipped by the decoder, yet checked
        (b'{"traceEvents": [{"ph": "X", "cat": "cpu_op", "name": "a", "args": {"x": 1e999}}]}', "line 1, column 74", "infinity"),
        (b'{"traceEvents": [{"ph": "X", "cat": "cpu_op", "name": "a", "args": {"x": "\xff"}}]}', "line 1, column 75", "UTF-8"),
        (b'{"traceEvents": [{"ph": "X", "cat": "cpu_op", "name": "a", "args": {"Input Dims": [[1e999]]}}]}', "line 1, column 85", "infinity"),
    ],
    ids=["comment", "missing-comma", "junk", "trailing-comma", "after-bare-array", "metadata",
         "overflow-in-skipped", "utf8-in-skipped", "overflow-in-kept-arg", "utf8-in-kept-arg",
         "overflow-in-kept-shape"],
)  # fmt: skip
def test_invalid_json_is_refused_at_its_line_and_column(
    tmp_path: Path, text: bytes, where: str, problem: str
) -> None:
    p = tmp_path / "bad.json"
    p.write_bytes(text)
    for fast in (True, False):
        reader = TraceReader(p)
        reader.fast = fast
        with pytest.raises(TraceError) as e:
            list(reader.chunks())
        assert f"invalid JSON at {where} of the file" in str(e.value)
        assert problem in str(e.value)


def test_positions_in_a_gzip_file_are_in_its_decompressed_json(tmp_path: Path) -> None:
    events = b",\n".join(orjson.dumps(e) for e in _kernel_events(3000))
    text = b'{"traceEvents": [\n' + events + b"\n{]}"
    p = tmp_path / "bad.json.gz"
    p.write_bytes(gzip.compress(text))
    with pytest.raises(TraceError, match=r"line 3002, column 1 of the decompressed JSON"):
        load_trace(p)


@pytest.mark.parametrize(
    "transform",
    [
        lambda t: b"\xef\xbb\xbf" + t,
        lambda t: t.replace(b"\n", b"\r\n"),
        lambda t: t.replace(b'"traceEvents"', b'"trace\\u0045vents"'),
        lambda t: t.replace(b'"aten::op1"', b'"aten::op\\u0031"'),
    ],
    ids=["bom", "crlf", "escaped-key", "escaped-name"],
)
def test_what_json_accepts_is_read(tmp_path: Path, transform) -> None:
    events = _kernel_events(50)
    text = orjson.dumps({"traceEvents": events}, option=orjson.OPT_INDENT_2)
    p = tmp_path / "t.json"
    p.write_bytes(transform(text))
    tf = load_trace(p)
    assert len(tf.cpu_ops) == 50
    assert set(tf.cpu_ops["name"].astype(str)) == {f"aten::op{i}" for i in range(7)}


def _scanned(monkeypatch, path: Path) -> int:
    """Bytes the reader's array scans went over while reading path (each a pass in numpy)."""

    seen = [0]
    quotes, starts = scan.string_quotes, scan.event_starts

    def count_quotes(a):
        seen[0] += len(a)
        return quotes(a)

    def count_starts(a):
        seen[0] += len(a)
        return starts(a)

    monkeypatch.setattr(scan, "string_quotes", count_quotes)
    monkeypatch.setattr(scan, "event_starts", count_starts)
    load_trace(path)
    return seen[0]


def test_one_huge_event_is_scanned_a_few_times_not_once_per_chunk(
    tmp_path: Path, monkeypatch
) -> None:
    """A 24 MB event: the reader reads as much again when a read ends inside an event, so the
    bytes scanned stay a small multiple of the file (a re-scan per 1 MiB read was quadratic);
    its args are over HUGE_EVENT_BYTES, so the event is dropped, with a notice, undecoded."""
    big = {"ph": "X", "cat": "cpu_op", "name": "aten::cat", "pid": 1, "tid": 1, "ts": 1_000,
           "dur": 5, "args": {"Input Dims": [[1, 2, 3]] * 3_000_000}}  # fmt: skip
    p = tmp_path / "big.json"
    p.write_bytes(orjson.dumps({"traceEvents": [*_kernel_events(100), big, *_kernel_events(100)]}))
    size = p.stat().st_size
    assert size > 20_000_000
    assert _scanned(monkeypatch, p) < 6 * size
    tf = load_trace(p)
    assert len(tf.cpu_ops) == 200
    assert [n.code for n in tf.notices] == ["events-dropped"]
    assert "args over 1 MiB" in tf.notices[0].message


def test_the_key_search_is_linear(tmp_path: Path, monkeypatch) -> None:
    """100,000 "traceEvents" strings before the real key (the issue's 300 s hang)."""
    decoys = b'{"notes": [' + b",".join([b'"traceEvents"'] * 100_000) + b"], "
    p = tmp_path / "decoys.json"
    p.write_bytes(decoys + orjson.dumps({"traceEvents": _kernel_events(10)})[1:])
    assert _scanned(monkeypatch, p) < 6 * p.stat().st_size
    assert len(load_trace(p).cpu_ops) == 10


def _shallow_reference(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What scan.Brackets keeps, from one scan of all of a by string_quotes and brackets."""
    quotes = scan.string_quotes(a)
    pos, depth = scan.brackets(a, quotes, commas=True)
    before = np.concatenate([[0], depth[:-1]])
    keep = np.minimum(before, depth) <= 1
    i = np.searchsorted(pos, quotes) - 1
    at_quote = np.where(i >= 0, depth[np.maximum(i, 0)], 0) if len(pos) else 0 * quotes
    return quotes[at_quote <= 1], pos[keep], depth[keep]


def _count_scanned(monkeypatch) -> list[int]:
    """[bytes scan.Brackets scans from now on]."""
    scanned = [0]
    block = scan.Brackets._block

    def counting(self: scan.Brackets, a: np.ndarray, lo: int) -> None:
        scanned[0] += len(a)
        block(self, a, lo)

    monkeypatch.setattr(scan.Brackets, "_block", counting)
    return scanned


@pytest.mark.parametrize(
    "dense", [0, scan._DENSE_MARKS, 10**9], ids=["per-mark", "mixed", "per-byte"]
)
def test_the_bracket_scan_resumes_where_the_last_read_stopped(monkeypatch, dense: int) -> None:
    """scan.Brackets fed a buffer that grows piece by piece, cut anywhere (in a string, in a
    run of backslashes, between a backslash and the quote it escapes), finds what one scan of
    the whole finds, and scans each byte once; blocks scanned mark by mark or byte by byte."""
    monkeypatch.setattr(scan, "_SCAN_BLOCK", 7)  # blocks cut the pieces too
    monkeypatch.setattr(scan, "_DENSE_MARKS", dense)
    scanned = _count_scanned(monkeypatch)
    rng = random.Random(18)
    alphabet = [b"{", b"}", b"[", b"]", b",", b'"', b"\\", b"\\", b'\\"', b"a", b" ", b"1"]
    for _ in range(300):
        text = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 120)))
        a = np.frombuffer(text, dtype=np.uint8)
        cuts = sorted(rng.sample(range(1, len(text) + 1), k=min(len(text), rng.randrange(1, 9))))
        scanner = scan.Brackets()
        scanned[0] = 0
        for cut in [*cuts, len(text)]:
            found = scanner.feed(a[:cut])
        assert scanned[0] == len(text)
        want = _shallow_reference(a)
        for got, expected in zip(found, want, strict=True):
            assert got.tolist() == expected.tolist(), text
        # resumed from the reader's first scan of the buffer (string_quotes and brackets)
        head = a[: cuts[0]]
        quotes = scan.string_quotes(head)
        scanner = scan.Brackets.resume(head, quotes, *scan.brackets(head, quotes, commas=True))
        scanned[0] = 0
        for cut in [*cuts[1:], len(text)]:
            found = scanner.feed(a[:cut])
        assert scanned[0] == len(text) - cuts[0]
        want = _shallow_reference(a)
        for got, expected in zip(found, want, strict=True):
            assert got.tolist() == expected.tolist(), text


def test_an_event_arriving_in_many_reads_is_scanned_once(tmp_path: Path, monkeypatch) -> None:
    """A 3 MB event read 64 kB at a time: the bracket scan of the exact path covers each byte
    of it about once (scanning the buffer from its start at each read: about twice, as reads
    double; before they doubled, once per read)."""
    big = {"ph": "X", "cat": "cpu_op", "name": "aten::cat", "pid": 1, "tid": 1, "ts": 1_000,
           "dur": 5, "args": {"Input Dims": [[1, 2, 3]] * 300_000}}  # fmt: skip
    p = tmp_path / "big.json"
    p.write_bytes(orjson.dumps({"traceEvents": [*_kernel_events(100), big, *_kernel_events(100)]}))
    size = p.stat().st_size
    scanned = _count_scanned(monkeypatch)
    results = []
    for fast in (True, False):
        scanned[0] = 0
        results.append(_events(p, fast=fast, chunk=1 << 16))
        assert size * 0.9 < scanned[0] < size * 1.2
    assert results[0] == results[1]
    assert results[0][1] == 201


def test_huge_arg_strings_are_dropped_undecoded(tmp_path: Path) -> None:
    """Concrete Inputs of 8 MB in one op; an op just under the limit is kept."""
    events = _kernel_events(20)
    events[5]["args"]["Concrete Inputs"] = ["x" * 8_000_000]
    events[6]["args"]["Concrete Inputs"] = ["y" * 500_000]
    p = tmp_path / "t.json"
    p.write_bytes(orjson.dumps({"traceEvents": events}))
    tf = load_trace(p)
    assert len(tf.cpu_ops) == 19
    assert "1 of 20 events dropped: 1 with args over 1 MiB" in tf.notices[0].message


def test_shapes_are_one_text_whatever_their_spacing(tmp_path: Path) -> None:
    """Input Dims are interned as the file writes them and made compact once per distinct
    text: the same shapes spaced two ways are one value; empty, null and absent are ""."""
    events = _kernel_events(6)
    spaced = b"[[2, 3], []]"
    for i, dims in enumerate([[[2, 3], []], [[2, 3], []], [], None]):
        events[i]["args"]["Input Dims"] = dims
    text = orjson.dumps({"traceEvents": events})
    p = tmp_path / "t.json"
    p.write_bytes(text.replace(b"[[2,3],[]]", spaced, 1))
    assert spaced in p.read_bytes()
    dims = load_trace(p).cpu_ops["input_dims"]
    assert list(dims) == ["[[2,3],[]]", "[[2,3],[]]", "", "", "", ""]


def test_suspect_reads_the_prefix_it_is_given(monkeypatch) -> None:
    """scan.suspect(data, end) answers as for data[:end], across its blocks (made tiny here)."""
    monkeypatch.setattr(scan, "_BLOCK", 5)
    cases = [b'{"a": 1e400}', b'{"a": 1E+400, "b": 2}', b'["0x7fe3a9c1"]', b'[1e40]',
             b'["\xc3\xa9"]', b'["\xff"]', b"[" + b"9" * 300 + b"]"]  # fmt: skip
    for data in cases:
        for end in range(len(data) + 1):
            assert scan.suspect(data, end) == scan.suspect(data[:end]), (data, end)
    assert scan.suspect(b'{"a": 1e400}') and not scan.suspect(b'{"a": 1e400}', 9)


@pytest.mark.parametrize(
    "head",
    [
        b'{"a": "traceEvents", ',
        b'{"notes": ["traceEvents", {"traceEvents": 1}], ',
        b'{"s": "x \\"traceEvents\\": [", ',
        b'{"trace\\u0045vents": ' + b" " * 300 + b"[], ",
    ],
    ids=["as-a-value", "nested", "inside-a-string", "escaped-key-first"],
)
def test_the_key_is_the_roots_whatever_comes_before(tmp_path: Path, head: bytes) -> None:
    """The first plain "traceEvents" in the text is not always the key: a value, a nested key
    and a string holding it come before the real one (an escaped key before it is the key)."""
    body = orjson.dumps({"traceEvents": _kernel_events(5)})[1:]
    p = tmp_path / "t.json"
    p.write_bytes(head + body)
    n = 0 if b"u0045" in head else 5
    if n:
        assert len(load_trace(p).cpu_ops) == n
    else:  # the escaped key holds an empty array; the plain one after it is a second key
        with pytest.raises(TraceError, match="two traceEvents keys"):
            load_trace(p)
