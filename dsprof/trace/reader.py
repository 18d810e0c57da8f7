"""Stream a Kineto Chrome-trace file into chunks of event dicts, without holding the whole document.

A multi-GB trace parsed in one `orjson.loads` costs several times its size in Python dicts. Here
the (decompressed) bytes are read in CHUNK_BYTES pieces; a vectorised bracket scan (numpy over the
bytes: quotes, then brackets outside strings, then a running depth) finds where each element of the
`traceEvents` array ends, and only whole events are handed to orjson. Everything outside the array
(deviceProperties, distributedInfo, baseTimeNanoseconds, which Kineto writes *after* the events)
is kept as raw bytes and parsed once at the end.

Both layouts are accepted: the usual `{"traceEvents": [...], ...}` object and a bare `[...]` array.

Fast path: Kineto writes every event as an object whose first key is "ph". A `{` followed by
`"ph":` cannot occur inside a JSON string (a quote there would be escaped), so those positions are
event starts, found with one numpy pass over the bytes instead of the full bracket scan; the kinds
to skip are read from the "ph", "cat" and "name" values right after each start. The pieces kept
are handed to orjson, and the chunk is accepted only when orjson parses exactly one object per
piece; anything else (another writer's key order, a nested "ph" key, an event that is not an
object) falls back to the bracket scan for that chunk, which is exact for any JSON.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from dsprof.core.errors import TraceError

# 1 MiB of JSON per orjson call. One chunk's transient dicts and scan arrays cost ~20x its bytes,
# so the chunk sets the parser's working memory; measured on hta/rank0 (25 MB) and a 245 MB
# trace: 1 MiB parses as fast as 4 MiB and needs 57 MB over the imports instead of 164 MB.
CHUNK_BYTES = 1 << 20
_QUOTE, _BACKSLASH = 0x22, 0x5C
_DEPTH_DELTA = np.zeros(256, dtype=np.int8)
_DEPTH_DELTA[[ord("{"), ord("[")]] = 1
_DEPTH_DELTA[[ord("}"), ord("]")]] = -1
_KEY = b'"traceEvents"'
# Events no analysis reads, recognised in the raw bytes and never handed to orjson: flow arrows
# (ph s/f/t, cats ac2g/async/async_cpu_to_gpu), metadata (ph M), profiler spans and overhead
# records, GPU-side copies of annotations, and (unless asked for) with_stack python_function
# events. In traces recorded with_stack they are half of all events; flows are a third.
# Each list below feeds both the regex of the bracket-scan path and the fast path's byte
# comparisons, so the two skip the same kinds.
SKIP_PH = b"sftM"
SKIP_CATS = (b"ac2g", b"async", b"async_cpu_to_gpu", b"Trace", b"overhead", b"gpu_user_annotation")
PYTHON_CAT = b"python_function"
# runtime calls that neither launch GPU work nor block the host (cudaEventQuery alone is a
# quarter of the runtime events of hta/rank0): exact names, and families (any suffix)
SKIP_CALLS = (
    b"cudaEventQuery", b"cudaEventRecord", b"cudaPeekAtLastError", b"cudaGetLastError",
    b"cudaGetDevice", b"cudaSetDevice", b"cudaFuncGetAttributes", b"cudaFuncSetAttribute",
    b"cudaPointerGetAttributes", b"cudaStreamIsCapturing", b"cudaDeviceGetAttribute",
    b"cuCtxGetCurrent",
)  # fmt: skip
SKIP_CALL_FAMILIES = (
    b"cudaOccupancyMaxActiveBlocksPerMultiprocessor", b"cudaStreamGetCaptureInfo",
    b"cuGetProcAddress",
)  # fmt: skip


def _skip_re(cats: tuple[bytes, ...]) -> re.Pattern[bytes]:
    names = b"|".join(
        [*map(re.escape, SKIP_CALLS), *(re.escape(f) + rb"\w*" for f in SKIP_CALL_FAMILIES)]
    )
    return re.compile(
        rb'"ph"\s*:\s*"[' + SKIP_PH + rb']"'
        + rb'|"name"\s*:\s*"(?:' + names + rb')"'
        + rb'|"cat"\s*:\s*"(?:' + b"|".join(map(re.escape, cats)) + rb')"'
    )  # fmt: skip


SKIP_WITH_PYTHON_RE = _skip_re(SKIP_CATS)
SKIP_RE = _skip_re((*SKIP_CATS, PYTHON_CAT))

# the fast path compares the bytes after each value's opening quote: a whole name ends with the
# closing quote, a family is a prefix
_FAST_SKIP_PH = np.frombuffer(SKIP_PH, dtype=np.uint8)
_FAST_SKIP_NAMES = (*(n + b'"' for n in SKIP_CALLS), *SKIP_CALL_FAMILIES)
_WS = np.zeros(256, dtype=bool)
_WS[[0x20, 0x0A, 0x0D, 0x09]] = True
_MAX_WS = 64  # the longest run of whitespace the fast path steps over (pretty-printed indents)
_CAT_WINDOW, _NAME_WINDOW = 24, 48
_PAD = 64  # zero bytes after a chunk: the longest literal or window read past a position


def open_trace(path: Path) -> IO[bytes]:
    """Open a .json or .json.gz trace for binary reading (gzip is detected from its magic bytes)."""
    try:
        f = path.open("rb")
    except OSError as e:
        raise TraceError(f"cannot open the trace: {e.strerror}", path=path) from None
    magic = f.read(2)
    f.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    return f


def _read(f: IO[bytes], n: int, path: Path) -> bytes:
    try:
        return f.read(n)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise TraceError(f"the gzip stream is truncated or corrupt ({e})", path=path) from None


def _string_quotes(a: np.ndarray) -> np.ndarray:
    """Positions of the quotes that open or close strings (escaped quotes removed)."""
    q = np.flatnonzero(a == _QUOTE)
    if not len(q):
        return q
    after_backslash = q[(q > 0) & (a[np.maximum(q - 1, 0)] == _BACKSLASH)]
    if not len(after_backslash):
        return q
    # rare: count the run of backslashes; an odd run escapes the quote
    escaped = []
    for p in after_backslash.tolist():
        run = 0
        while p - run - 1 >= 0 and a[p - run - 1] == _BACKSLASH:
            run += 1
        if run % 2:
            escaped.append(p)
    return np.setdiff1d(q, np.asarray(escaped, dtype=q.dtype), assume_unique=True)


def _depth_scan(buf: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Brackets outside strings in buf (positions) and the nesting depth after each one.

    buf must start outside any string; depth is relative to its start.
    """
    a = np.frombuffer(buf, dtype=np.uint8)
    quotes = _string_quotes(a)
    delta = _DEPTH_DELTA[a]
    pos = np.flatnonzero(delta)
    if len(quotes):
        pos = pos[(np.searchsorted(quotes, pos) & 1) == 0]
    depth = np.cumsum(delta[pos], dtype=np.int64)
    return pos, depth


class TraceReader:
    """Iterate `chunks()` for lists of event dicts; afterwards `metadata` holds the other keys."""

    def __init__(
        self, path: Path, chunk_bytes: int = CHUNK_BYTES, keep_python_functions: bool = False
    ) -> None:
        self.path = path
        self.chunk_bytes = chunk_bytes
        self.skip = SKIP_WITH_PYTHON_RE if keep_python_functions else SKIP_RE
        self.skip_cats = SKIP_CATS if keep_python_functions else (*SKIP_CATS, PYTHON_CAT)
        self.metadata: dict[str, Any] = {}
        self.uncompressed_bytes = 0
        self.events_total = 0  # every element of traceEvents, skipped kinds included
        self.fast = True  # False: always the bracket scan (tests compare the two)

    def chunks(self) -> Iterator[list[dict[str, Any]]]:
        """Lists of raw event dicts, in file order."""
        with open_trace(self.path) as f:
            head, rest = self._find_array(f)
            tail = yield from self._events(f, rest)
        self._parse_metadata(head, tail)

    def _more(self, f: IO[bytes]) -> bytes:
        data = _read(f, self.chunk_bytes, self.path)
        self.uncompressed_bytes += len(data)
        return data

    def _find_array(self, f: IO[bytes]) -> tuple[bytes, bytes]:
        """Read up to the '[' that opens the events; returns (bytes before the key, bytes after '[')."""
        buf = b""
        while True:
            data = self._more(f)
            buf += data
            stripped = buf.lstrip()
            if stripped[:1] == b"[":  # a bare array of events
                return b"", stripped[1:]
            if stripped and stripped[:1] != b"{":
                raise TraceError(
                    "not a JSON trace: it does not start with '{' or '['", path=self.path
                )
            start = 0
            while (k := buf.find(_KEY, start)) >= 0:
                _, depth = _depth_scan(buf[:k])
                at_top = len(depth) and depth[-1] == 1 and _outside_string(buf[:k])
                after = buf[k + len(_KEY) :].lstrip()
                if at_top and after[:1] == b":":
                    value = after[1:].lstrip()
                    if value[:1] == b"[":
                        return buf[:k], value[1:]
                    if value:
                        raise TraceError("traceEvents is not a JSON array", path=self.path)
                    break  # the value is in the next read
                start = k + 1
            if not data:
                if not buf.strip():
                    raise TraceError("the file is empty", path=self.path)
                raise TraceError("no traceEvents array in this JSON file", path=self.path)

    def _events(self, f: IO[bytes], buf: bytes) -> Generator[list[dict[str, Any]], None, bytes]:
        """Yield event chunks; return the bytes after the closing ']' of the array."""
        while True:
            data = self._more(f)
            buf += data
            if data and self.fast:
                fast = self._parse_fast(buf)
                if fast is not None:
                    events, cut = fast
                    yield events
                    buf = buf[cut:]
                    continue
            pos, depth = _depth_scan(buf)
            closed = np.flatnonzero(depth < 0)
            limit = int(closed[0]) if len(closed) else len(pos)
            ends = pos[:limit][depth[:limit] == 0]
            if len(ends):
                cut = int(ends[-1]) + 1
                n = int(np.searchsorted(pos, cut))
                yield self._parse_events(buf[:cut], pos[:n], depth[:n])
                buf, pos, closed = buf[cut:], pos - cut, closed
            if len(closed):
                array_end = int(pos[int(closed[0])])
                if buf[:array_end].strip(b" \t\r\n,"):
                    raise TraceError(
                        "invalid JSON in traceEvents (a value that is not an object)",
                        path=self.path,
                    )
                return buf[array_end + 1 :] + self._rest(f)
            if not data:
                raise TraceError(
                    "the JSON ends inside the traceEvents array (the file is truncated)",
                    path=self.path,
                )

    def _rest(self, f: IO[bytes]) -> bytes:
        parts = []
        while data := self._more(f):
            parts.append(data)
        return b"".join(parts)

    def _parse_events(
        self, body: bytes, pos: np.ndarray, depth: np.ndarray
    ) -> list[dict[str, Any]]:
        """Parse the whole events in body, skipping (unparsed) the kinds nothing reads."""
        a = np.frombuffer(body, dtype=np.uint8)
        before = np.concatenate([[0], depth[:-1]])
        starts = pos[(depth == 1) & (before == 0) & (a[pos] == ord("{"))]
        ends = pos[depth == 0]
        self.events_total += len(starts)
        if len(starts) != len(ends):  # a non-object element: let orjson report it
            return self._loads(body[body.find(b"{") :])
        drop = np.zeros(len(starts), dtype=bool)
        hits = np.fromiter((m.start() for m in self.skip.finditer(body)), dtype=np.int64)
        if len(hits):
            i = np.searchsorted(starts, hits, side="right") - 1
            inside = (i >= 0) & (hits < ends[np.maximum(i, 0)])
            drop[i[inside]] = True
        if not drop.any():
            return self._loads(body[int(starts[0]) :] if len(starts) else b"")
        keep = np.flatnonzero(~drop)
        parts = [
            body[s : e + 1] for s, e in zip(starts[keep].tolist(), ends[keep].tolist(), strict=True)
        ]
        return self._loads(b",".join(parts))

    def _parse_fast(self, buf: bytes) -> tuple[list[dict[str, Any]], int] | None:
        """(events, bytes consumed) for the whole events in buf, or None to use the bracket scan.

        Events run from one start to the next; the last start of buf is where the next chunk
        begins (its event may continue in the next read).
        """
        a = np.zeros(len(buf) + _PAD, dtype=np.uint8)  # zero padding: no bounds checks below
        a[: len(buf)] = np.frombuffer(buf, dtype=np.uint8)
        starts, ph_quote, other_ph = _event_starts(a)
        if len(starts) < 2 or buf[: int(starts[0])].strip(b" \t\r\n,"):
            return None
        if len(other_ph) and other_ph[0] < starts[-1]:
            return None  # an event not written "ph" first would hide inside its neighbour
        # each event ends at the '}' before the ',' before the next start
        comma = _step_ws(a, starts[1:] - 1, -1)
        close = _step_ws(a, comma - 1, -1)
        if not (_at(a, comma, b",") & _at(a, close, b"}")).all():
            return None
        starts, ph_quote, ends = starts[:-1], ph_quote[:-1], close + 1
        skip, known = _fast_skips(a, ph_quote, self.skip_cats)
        keep = ~skip
        # events whose first keys are not "ph", "cat", "name" in that order: ask the regex
        for i in np.flatnonzero(keep & ~known).tolist():
            if self.skip.search(buf, int(starts[i]), int(ends[i])):
                keep[i] = False
        n_keep = int(keep.sum())
        if n_keep:
            # runs of consecutive kept events are sliced once each
            edges = np.diff(keep.astype(np.int8), prepend=0, append=0)
            first, last = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
            body = b",".join(
                buf[s:e] for s, e in zip(starts[first].tolist(), ends[last].tolist(), strict=True)
            )
            try:
                events = orjson.loads(b"[" + body + b"]")
            except orjson.JSONDecodeError:
                return None
            if len(events) != n_keep or not all(type(e) is dict for e in events):
                return None
        else:
            events = []
        self.events_total += len(starts)
        return events, int(ends[-1])

    def _loads(self, body: bytes) -> list[dict[str, Any]]:
        try:
            events = orjson.loads(b"[" + body + b"]")
        except orjson.JSONDecodeError as e:
            raise TraceError(f"invalid JSON in traceEvents ({e})", path=self.path) from None
        return [e for e in events if isinstance(e, dict)]

    def _parse_metadata(self, head: bytes, tail: bytes) -> None:
        if not head:  # bare array
            return
        try:
            doc = orjson.loads(head + b'"traceEvents": []' + tail)
        except orjson.JSONDecodeError as e:
            raise TraceError(f"invalid JSON outside traceEvents ({e})", path=self.path) from None
        if isinstance(doc, dict):
            doc.pop("traceEvents", None)
            self.metadata = doc


def _outside_string(prefix: bytes) -> bool:
    a = np.frombuffer(prefix, dtype=np.uint8)
    return len(_string_quotes(a)) % 2 == 0


def _at(a: np.ndarray, p: np.ndarray, literal: bytes) -> np.ndarray:
    """Mask: the bytes at positions p spell literal (a is zero-padded; p >= -_PAD)."""
    ok = a[p] == literal[0]
    for i in range(1, len(literal)):
        ok &= a[p + i] == literal[i]
    return ok


def _step_ws(a: np.ndarray, p: np.ndarray, step: int) -> np.ndarray:
    """Move each position in p by step (+1 or -1) while it is on whitespace (padding is not)."""
    p = p.copy()
    for _ in range(_MAX_WS):
        ws = _WS[a[p]]
        if not ws.any():
            break
        p[ws] += step
    return p


def _event_starts(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of each '{' whose first key is "ph", of the quote that opens that key, and of
    the "ph" keys that are not first in their object (events another writer wrote, or nested)."""
    quote = np.flatnonzero(a == ord("h")) - 2  # '"ph"' is found from its rarer letter
    quote = quote[_at(a, quote, b'"ph"')]
    quote = quote[_at(a, _step_ws(a, quote + 4, 1), b":")]  # a key, not the string "ph"
    brace = _step_ws(a, quote - 1, -1)
    is_start = _at(a, brace, b"{")
    return brace[is_start], quote[is_start], quote[~is_start]


def _string_value(a: np.ndarray, p: np.ndarray, key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(first character of the string value, mask where `key: "` is found at p)."""
    ok = _at(a, p, key)
    colon = _step_ws(a, p + len(key), 1)
    ok &= _at(a, colon, b":")
    quote = _step_ws(a, colon + 1, 1)
    ok &= _at(a, quote, b'"')
    return quote + 1, ok


def _window(a: np.ndarray, p: np.ndarray, width: int) -> np.ndarray:
    """The width bytes from each position in p, one row each (width <= _PAD)."""
    return a[p[:, None] + np.arange(width)]


def _next_key(a: np.ndarray, closing_quote: np.ndarray) -> np.ndarray:
    """Where the next key of an object is expected after a string value's closing quote."""
    comma = _step_ws(a, closing_quote + 1, 1)
    return np.where(_at(a, comma, b","), _step_ws(a, comma + 1, 1), -1)


def _packed(rows: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each row as one little-endian uint64 (for one compare per row)."""
    return np.ascontiguousarray(rows[:, :8]).view("<u8")[:, 0]


def _starts_with(rows: np.ndarray, packed: np.ndarray, literal: bytes) -> np.ndarray:
    """Mask: the row begins with literal (first 8 bytes compared packed, the rest on the few hits)."""
    head = literal[:8]
    mask = (1 << (8 * len(head))) - 1
    hit = (packed & np.uint64(mask)) == np.uint64(int.from_bytes(head, "little"))
    if len(literal) > 8 and hit.any():
        idx = np.flatnonzero(hit)
        tail = np.frombuffer(literal[8:], dtype=np.uint8)
        hit[idx] = (rows[idx, 8 : len(literal)] == tail).all(axis=1)
    return hit


def _fast_skips(
    a: np.ndarray, ph_quote: np.ndarray, skip_cats: tuple[bytes, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(skip, known) per event: skip its kind (see SKIP_RE); known: its first keys were read."""
    ph, known = _string_value(a, ph_quote, b'"ph"')
    known &= _at(a, ph + 1, b'"')
    skip = known & np.isin(a[ph], _FAST_SKIP_PH)
    cat, has_cat = _string_value(a, _next_key(a, ph + 1), b'"cat"')
    known &= has_cat
    cats = _window(a, cat, _CAT_WINDOW)
    packed = _packed(cats)
    for c in skip_cats:
        skip |= known & _starts_with(cats, packed, c + b'"')
    quotes = cats == _QUOTE
    known &= quotes.any(axis=1)
    # names matter only for runtime calls (cuda_runtime, cuda_driver, legacy Runtime)
    runtime = np.flatnonzero(
        known
        & ~skip
        & (_starts_with(cats, packed, b"cuda_") | _starts_with(cats, packed, b"Runtime"))
    )
    if len(runtime):
        cat_end = cat[runtime] + quotes[runtime].argmax(axis=1)
        name, has_name = _string_value(a, _next_key(a, cat_end), b'"name"')
        known[runtime] = has_name
        names = _window(a, name, _NAME_WINDOW)
        packed_names = _packed(names)
        for n in _FAST_SKIP_NAMES:
            skip[runtime] |= has_name & _starts_with(names, packed_names, n)
    return skip, known
