"""Stream a Kineto Chrome-trace file into chunks of event dicts, without holding the whole document.

A multi-GB trace parsed in one `orjson.loads` costs several times its size in Python dicts. Here
the (decompressed) bytes are read in CHUNK_BYTES pieces, only whole events are handed to orjson,
and the kinds no analysis reads are never built at all. Everything outside the `traceEvents`
array (deviceProperties, distributedInfo, baseTimeNanoseconds, which Kineto writes *after* the
events) is kept as raw bytes and parsed once at the end. Both layouts are accepted: the usual
`{"traceEvents": [...], ...}` object and a bare `[...]` array.

Exact JSON: every byte of the file is checked by a real parser. The events kept are parsed by
orjson; the ones skipped, and whatever lies between events, are validated by msgspec without
being built (about ten times cheaper). What either refuses is refused, with the line and column
in the file (dsprof.trace.reader.json_position); what both accept is read, a UTF-8 byte-order
mark included. Two paths find the events:

- the fast path: Kineto writes every event as an object whose first key is "ph". A `{` followed
  by `"ph":` cannot occur inside a JSON string (a quote there would be escaped), so those
  positions are event starts, found with one numpy pass; the kinds to skip are read from the
  "ph", "cat" and "name" values right after each start. A chunk is accepted only when every
  piece parses as exactly one object and the bytes between pieces are a comma and whitespace.
- the exact path (a chunk the fast path cannot prove): a bracket scan outside strings finds the
  array's elements, one msgspec pass validates them all and reads each object's ph/cat/name.

Both skip by the same rule (skip_head) and validate with the same parsers, so the fast path
never accepts text the exact path refuses. Time is linear in the file whatever its shape: when
a read ends inside an event, the next read is as large as the buffer (a 64 MB event costs a few
scans, not 64), and an event over HUGE_EVENT_BYTES is read field by field, its args left
undecoded when they are that large too.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

import msgspec
import numpy as np
import orjson

from dsprof.core.errors import TraceError

# 1 MiB of JSON per orjson call. One chunk's transient dicts and scan arrays cost ~20x its bytes,
# so the chunk sets the parser's working memory; measured on hta/rank0 (25 MB) and a 245 MB
# trace: 1 MiB parses as fast as 4 MiB and needs 57 MB over the imports instead of 164 MB.
CHUNK_BYTES = 1 << 20
# An event longer than this is read field by field (msgspec) instead of as one dict, and its
# args are not decoded when they alone are longer: real events are under 100 kB (a long
# templated kernel name, the shapes of an op on hundreds of tensors).
HUGE_EVENT_BYTES = 1 << 20
_QUOTE, _BACKSLASH, _COMMA = 0x22, 0x5C, 0x2C
_BOM = b"\xef\xbb\xbf"
_JSON_WS = b" \t\r\n"
_DEPTH_DELTA = np.zeros(256, dtype=np.int8)
_DEPTH_DELTA[[ord("{"), ord("[")]] = 1
_DEPTH_DELTA[[ord("}"), ord("]")]] = -1
_KEY = "traceEvents"
# Events no analysis reads, never built: flow arrows (ph s/f/t, cats ac2g/async/
# async_cpu_to_gpu), metadata (ph M), profiler spans and overhead records, GPU-side copies of
# annotations, and (unless asked for) with_stack python_function events. In traces recorded
# with_stack they are half of all events; flows are a third. skip_head() is the rule; the fast
# path's byte comparisons implement the same rule on the raw values.
SKIP_PH = b"sftM"
SKIP_CATS = (b"ac2g", b"async", b"async_cpu_to_gpu", b"Trace", b"overhead", b"gpu_user_annotation")
PYTHON_CAT = b"python_function"
# runtime calls that neither launch GPU work nor block the host (cudaEventQuery alone is a
# quarter of the runtime events of hta/rank0): exact names, and families (any suffix); only
# events whose cat starts with RUNTIME_CAT_PREFIXES are skipped by name
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
RUNTIME_CAT_PREFIXES = (b"cuda_", b"Runtime")

_SKIP_PH_STR = frozenset(SKIP_PH.decode())
_SKIP_CALLS_STR = frozenset(c.decode() for c in SKIP_CALLS)
_SKIP_FAMILIES_STR = tuple(f.decode() for f in SKIP_CALL_FAMILIES)
_RUNTIME_STR = tuple(p.decode() for p in RUNTIME_CAT_PREFIXES)

# the fast path compares the bytes after each value's opening quote: a whole name ends with the
# closing quote, a family is a prefix
_FAST_SKIP_PH = np.frombuffer(SKIP_PH, dtype=np.uint8)
_FAST_SKIP_NAMES = (*(n + b'"' for n in SKIP_CALLS), *SKIP_CALL_FAMILIES)
_WS = np.zeros(256, dtype=bool)
_WS[[0x20, 0x0A, 0x0D, 0x09]] = True
_MAX_WS = 64  # the longest run of whitespace the fast path steps over (pretty-printed indents)
_CAT_WINDOW, _NAME_WINDOW = 24, 48
_PAD = 64  # zero bytes after a chunk: the longest literal or window read past a position
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[ord("0") : ord("9") + 1] = True
# digits in a row from which a number may not fit a double with a two-digit exponent (_suspect)
LONG_DIGITS = 200


class _Head(msgspec.Struct):
    """The fields an event is classified by; msgspec validates and skips the others."""

    ph: Any = None
    cat: Any = None
    name: Any = None


class _Object(msgspec.Struct):
    """Any JSON object: validated, nothing kept."""


class _BigEvent(msgspec.Struct):
    """The fields the engine reads from an event longer than HUGE_EVENT_BYTES; args stay raw."""

    ph: Any = msgspec.UNSET
    cat: Any = msgspec.UNSET
    name: Any = msgspec.UNSET
    ts: Any = msgspec.UNSET
    dur: Any = msgspec.UNSET
    pid: Any = msgspec.UNSET
    tid: Any = msgspec.UNSET
    args: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class OversizedArgs:
    """Stands for the args of an event whose args alone exceed HUGE_EVENT_BYTES (not decoded)."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


_ELEMENTS = msgspec.json.Decoder(list[_Head | list | str | int | float | bool | None])
_HEADS = msgspec.json.Decoder(list[_Head])
_OBJECTS = msgspec.json.Decoder(list[_Object])
_BIG_EVENT = msgspec.json.Decoder(_BigEvent)
_ANY = msgspec.json.Decoder()
_MSGSPEC_BYTE = re.compile(r"\s*\(byte (\d+)\)$")
_UNFINISHED = re.compile(rb"[\w+\-.\\\"]*")  # what may end a prefix where a token is cut
_ORJSON_POS = re.compile(r":? line \d+ column \d+ \(char \d+\)$")


class _Invalid(Exception):
    """A piece the fast path cannot prove valid (the exact path decides, and locates errors)."""


def skip_head(ph: Any, cat: Any, name: Any, skip_cats: frozenset[str]) -> bool:
    """True for an event of a kind no analysis reads (see SKIP_PH, SKIP_CATS, SKIP_CALLS)."""
    if type(ph) is str and len(ph) == 1 and ph in _SKIP_PH_STR:
        return True
    if type(cat) is not str:
        return False
    if cat in skip_cats:
        return True
    return (
        cat.startswith(_RUNTIME_STR)
        and type(name) is str
        and (name in _SKIP_CALLS_STR or name.startswith(_SKIP_FAMILIES_STR))
    )


def open_trace(path: Path) -> IO[bytes]:
    """Open a .json or .json.gz trace for binary reading (gzip is detected from its magic bytes)."""
    try:
        f = path.open("rb")
        magic = f.read(2)
        f.seek(0)
    except OSError as e:
        raise TraceError(f"cannot open the trace: {e.strerror}", path=path) from None
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    return f


def _read(f: IO[bytes], n: int, path: Path) -> bytes:
    try:
        return f.read(n)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise TraceError(f"the gzip stream is truncated or corrupt ({e})", path=path) from None
    except OSError as e:
        raise TraceError(f"cannot read the trace: {e.strerror or e}", path=path) from None


def json_position(path: Path, offset: int) -> str:
    """'line L, column C' of a byte offset in the (decompressed) file, for an error message."""
    line, last_line = 1, b""
    try:
        with open_trace(path) as f:
            remaining = offset
            while remaining > 0:
                data = _read(f, min(remaining, CHUNK_BYTES), path)
                if not data:
                    break
                remaining -= len(data)
                newlines = data.count(b"\n")
                if newlines:
                    line += newlines
                    last_line = data[data.rfind(b"\n") + 1 :]
                else:
                    last_line += data
    except TraceError:
        return f"byte {offset}"
    column = len(last_line.decode("utf-8", "replace")) + 1
    where = "of the decompressed JSON" if path.name.endswith(".gz") else "of the file"
    return f"line {line}, column {column} {where} (byte {offset})"


class TraceReader:
    """Iterate `chunks()` for lists of event dicts; afterwards `metadata` holds the other keys."""

    def __init__(
        self, path: Path, chunk_bytes: int = CHUNK_BYTES, keep_python_functions: bool = False
    ) -> None:
        self.path = path
        self.chunk_bytes = chunk_bytes
        self.skip_cats = SKIP_CATS if keep_python_functions else (*SKIP_CATS, PYTHON_CAT)
        self._skip_cats_str = frozenset(c.decode() for c in self.skip_cats)
        self.metadata: dict[str, Any] = {}
        self.uncompressed_bytes = 0
        self.events_total = 0  # every element of traceEvents, skipped kinds included
        self.not_objects = 0  # elements of traceEvents that are not JSON objects (not events)
        self.fast = True  # False: always the exact path (tests compare the two)
        self._f: IO[bytes] | None = None
        self._after_element = False  # the next element of the array must follow a comma

    def chunks(self) -> Iterator[list[dict[str, Any]]]:
        """Lists of raw event dicts, in file order."""
        with open_trace(self.path) as f:
            self._f = f
            head, head_at, rest, rest_at = self._find_array()
            tail, tail_at = yield from self._events(rest, rest_at)
        self._parse_metadata(head, head_at, tail, tail_at)

    # ---- reading ----------------------------------------------------------------------------
    def _more(self, n: int) -> bytes:
        assert self._f is not None
        data = _read(self._f, n, self.path)
        self.uncompressed_bytes += len(data)
        return data

    def _rest(self) -> bytes:
        parts = []
        while data := self._more(self.chunk_bytes):
            parts.append(data)
        return b"".join(parts)

    def _fail(self, offset: int, problem: str) -> NoReturn:
        raise TraceError(
            f"invalid JSON at {json_position(self.path, offset)}: {problem}", path=self.path
        )

    def _fail_decode(self, e: Exception, base: int, data: bytes = b"") -> NoReturn:
        """Raise for a msgspec error in data, whose byte 0 is at file offset base."""
        if isinstance(e, RecursionError):
            self._fail(base, "values nested too deeply")
        text = str(e).removeprefix("JSON is malformed: ")
        if text.startswith("Input data was truncated"):
            raise TraceError("the JSON ends early (the file is truncated)", path=self.path)
        m = _MSGSPEC_BYTE.search(text)
        if m:
            self._fail(base + int(m.group(1)), text[: m.start()])
        try:  # msgspec gives no position for bad UTF-8
            data.decode("utf-8")
        except UnicodeDecodeError as u:
            self._fail(base + u.start, f"{text} ({u.reason})")
        raise TraceError(f"invalid JSON ({text})", path=self.path)

    # ---- the array --------------------------------------------------------------------------
    def _find_array(self) -> tuple[bytes, int, bytes, int]:
        """(bytes before the key, their offset, bytes after the array's '[', their offset)."""
        buf = b""
        want = self.chunk_bytes
        while True:
            data = self._more(want)
            buf += data
            start = len(_BOM) if buf.startswith(_BOM) else 0
            first = _skip_ws(buf, start)
            if first < len(buf):
                if buf[first] == ord("["):  # a bare array of events
                    return b"", 0, buf[first + 1 :], first + 1
                if buf[first] != ord("{"):
                    raise TraceError(_not_json(buf[first:]), path=self.path)
                found = self._find_key(buf, first)
                if found is not None:
                    key, value = found
                    return buf[start:key], start, buf[value + 1 :], value + 1
            if not data:
                if first >= len(buf):
                    raise TraceError("the file is empty", path=self.path)
                self._no_key(buf, start)
            if len(buf) > self.chunk_bytes:
                self._probe(buf, start, 0)
            want = max(want, len(buf))  # read as much again: linear time for any head size

    def _find_key(self, buf: bytes, root: int) -> tuple[int, int] | None:
        """(opening quote of the root's "traceEvents" key, its '['), or None until more is read."""
        a = np.frombuffer(buf, dtype=np.uint8)
        quotes = _string_quotes(a)
        opens, closes = quotes[0::2], quotes[1::2]
        opens = opens[: len(closes)]  # the last string may continue in the next read
        pos, depth = _brackets(a, quotes)
        # depth just inside each string: that of the last bracket before it
        i = np.searchsorted(pos, opens) - 1
        inside = np.where(i >= 0, depth[np.maximum(i, 0)], 0) if len(pos) else np.zeros_like(opens)
        below = np.flatnonzero(depth < 1)
        if len(below):  # the root closed: a key after it is not the root's
            keep = opens < pos[below[0]]
            opens, closes, inside = opens[keep], closes[keep], inside[keep]
        length = closes - opens - 1
        escaped = np.zeros(len(opens), dtype=bool)
        slashes = np.flatnonzero(a == _BACKSLASH)
        if len(slashes) and len(opens):
            j = np.searchsorted(opens, slashes, side="right") - 1
            ok = (j >= 0) & (slashes < closes[np.maximum(j, 0)])
            escaped[j[ok]] = True
        candidates = np.flatnonzero((inside == 1) & ((length == len(_KEY)) | escaped))
        for k in candidates.tolist():
            o, c = int(opens[k]), int(closes[k])
            raw = buf[o : c + 1]
            if raw != b'"traceEvents"' and not (escaped[k] and _decodes_to(raw, _KEY)):
                continue
            colon = _skip_ws(buf, c + 1)
            if colon >= len(buf):
                return None
            if buf[colon] != ord(":"):
                continue  # a value, not a key
            value = _skip_ws(buf, colon + 1)
            if value >= len(buf):
                return None
            if buf[value] != ord("["):
                raise TraceError("traceEvents is not a JSON array", path=self.path)
            return o, value
        return None

    def _no_key(self, buf: bytes, start: int) -> NoReturn:
        """The whole file is read and no traceEvents key was found: say why."""
        try:
            orjson.loads(buf[start:])
        except orjson.JSONDecodeError:
            self._probe(buf, start, 0, final=True)
        raise TraceError("no traceEvents array in this JSON file", path=self.path)

    def _probe(self, buf: bytes, start: int, at: int, *, final: bool = False) -> None:
        """Raise with the position when buf[start:] (at file offset at) holds a syntax error,
        not merely an end that comes in a later read (final: no later read comes)."""
        data = buf[start:]
        found = _error_at(data)
        if found is None:
            return
        p, problem = found
        if not final and _UNFINISHED.fullmatch(data, p):
            return  # the last token (a number, a literal, an escape) is cut by the read
        self._fail(at + start + p, problem)

    def _probe_elements(self, buf: bytes, at: int) -> None:
        """_probe for the array elements that start buf (file offset at), a leading ',' off."""
        x = _skip_ws(buf, 0)
        if self._after_element and buf[x : x + 1] == b",":
            x += 1
        self._probe(b"[" + buf[x:], 0, at + x - 1)

    # ---- the events -------------------------------------------------------------------------
    def _events(
        self, buf: bytes, at: int
    ) -> Generator[list[dict[str, Any]], None, tuple[bytes, int]]:
        """Yield event chunks; return the bytes after the array's ']' and their offset.

        at: the file offset of buf[0].
        """
        want = self.chunk_bytes
        while True:
            data = self._more(want)
            buf += data
            if data and self.fast:
                fast = self._parse_fast(buf)
                if fast is not None:
                    events, cut = fast
                    yield events
                    buf, at, want = buf[cut:], at + cut, self.chunk_bytes
                    continue
            events, cut, closed = self._parse_exact(buf, at, eof=not data)
            if cut:
                yield events
                buf, at, want = buf[cut:], at + cut, self.chunk_bytes
            else:  # no whole element yet: read as much again, so a huge event costs linear time
                want = max(want, len(buf))
            if closed:
                return buf + self._rest(), at
            if not data:
                self._probe_elements(buf, at)
                raise TraceError(
                    "the JSON ends inside the traceEvents array (the file is truncated)",
                    path=self.path,
                )

    def _parse_exact(
        self, buf: bytes, at: int, *, eof: bool
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """(events, bytes consumed, array closed) for the whole elements at the start of buf."""
        a = np.frombuffer(buf, dtype=np.uint8)
        quotes = _string_quotes(a)
        pos, depth = _brackets(a, quotes, commas=True)
        closed = np.flatnonzero(depth < 0)
        if len(closed):
            end = int(pos[closed[0]])
            n = int(closed[0])
            events = self._elements(buf, end, at, pos[:n], depth[:n], final=True)
            if buf[end] != ord("]"):
                self._fail(at + end, "expected ']' to close traceEvents")
            return events, end + 1, True
        commas = pos[(depth == 0) & (a[pos] == _COMMA)]
        if self._after_element and len(commas) and commas[0] == _skip_ws(buf, 0):
            commas = commas[1:]  # the separator before this chunk's first element
        if not len(commas):
            if len(buf) > self.chunk_bytes and not eof:  # a long element: is it valid so far?
                self._probe_elements(buf, at)
            return [], 0, False
        end = int(commas[-1])
        n = int(np.searchsorted(pos, end))
        return self._elements(buf, end, at, pos[:n], depth[:n], final=False), end, False

    def _elements(
        self, buf: bytes, end: int, at: int, pos: np.ndarray, depth: np.ndarray, *, final: bool
    ) -> list[dict[str, Any]]:
        """The events among the array elements in buf[:end] (exact path)."""
        first = _skip_ws(buf, 0)
        lead = first
        if self._after_element:
            if first < end and buf[first] == _COMMA:
                lead = first + 1
            elif first >= end and final:
                return []  # '...} ]'
            else:
                self._fail(at + first, "expected ',' or ']' after an element of traceEvents")
        if _skip_ws(buf, lead) >= end:
            if self._after_element or not final:
                self._fail(at + _skip_ws(buf, lead), "expected a value after ','")
            return []  # '[ ]'
        text = b"[" + buf[lead:end] + b"]"
        base = at + lead - 1  # the file offset of text[0] (the '[' is not in the file)
        try:
            items = _ELEMENTS.decode(text)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as e:
            self._fail_decode(e, base, text)
        if _suspect(text):
            self._check_strictly(text, base)
        self._after_element = True
        a = np.frombuffer(buf, dtype=np.uint8)
        before = np.concatenate([[0], depth[:-1]])
        starts = pos[(depth == 1) & (before == 0) & (a[pos] == ord("{"))]
        ends = pos[(depth == 0) & (a[pos] == ord("}"))] + 1
        heads = [x for x in items if type(x) is _Head]
        self.events_total += len(items)
        self.not_objects += len(items) - len(heads)
        if len(heads) != len(starts) or len(ends) != len(starts):
            raise TraceError("the trace reader lost track of the events", path=self.path)
        cats = self._skip_cats_str
        skip = np.fromiter(
            (skip_head(h.ph, h.cat, h.name, cats) for h in heads), dtype=bool, count=len(heads)
        )
        try:
            return self._build(buf, starts, ends, skip, validated=True)
        except _Invalid:
            self._check_strictly(text, base)
            raise TraceError("the trace reader lost track of the events", path=self.path) from None

    def _check_strictly(self, text: bytes, base: int) -> None:
        """Raise with the position if orjson refuses text (file offset of text[0]: base)."""
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError as u:
            self._fail(base + u.start, f"the text is not valid UTF-8 ({u.reason})")
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError as e:
            problem = _ORJSON_POS.sub("", str(e))
            self._fail(base + len(decoded[: e.pos].encode()), problem)

    def _parse_fast(self, buf: bytes) -> tuple[list[dict[str, Any]], int] | None:
        """(events, bytes consumed) for the whole events in buf, or None to use the exact path.

        Events run from one start to the next; the last start of buf is where the next chunk
        begins (its event may continue in the next read).
        """
        a = np.zeros(len(buf) + _PAD, dtype=np.uint8)  # zero padding: no bounds checks below
        a[: len(buf)] = np.frombuffer(buf, dtype=np.uint8)
        starts, ph_quote, other_ph = _event_starts(a)
        if len(starts) < 2:
            return None
        # before the first start: whitespace, and one comma when an element came before
        prefix = buf[: int(starts[0])].strip(_JSON_WS)
        if prefix != (b"," if self._after_element else b""):
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
        unknown = np.flatnonzero(~known & ~skip)
        if len(unknown):  # first keys other than "ph", "cat", "name": read them
            try:
                heads = _HEADS.decode(_joined(buf, starts[unknown], ends[unknown]))
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                return None
            if len(heads) != len(unknown):
                return None
            cats = self._skip_cats_str
            skip[unknown] = [skip_head(h.ph, h.cat, h.name, cats) for h in heads]
        try:
            events = self._build(buf, starts, ends, skip, validated=False)
        except _Invalid:
            return None
        self.events_total += len(starts)
        self._after_element = True
        return events, int(ends[-1])

    def _build(
        self, buf: bytes, starts: np.ndarray, ends: np.ndarray, skip: np.ndarray, *, validated: bool
    ) -> list[dict[str, Any]]:
        """The kept events (not skip) as dicts, in file order; raises _Invalid when a piece is
        not exactly one valid object. validated: the skipped pieces were checked already."""
        huge = (ends - starts) > HUGE_EVENT_BYTES
        if not validated:
            quiet = np.flatnonzero(skip & ~huge)
            if len(quiet):
                text = _joined(buf, starts[quiet], ends[quiet])
                try:
                    n = len(_OBJECTS.decode(text))
                except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                    raise _Invalid from None
                if n != len(quiet) or _suspect(text):
                    raise _Invalid
        keep = ~skip & ~huge
        events: list[dict[str, Any]] = []
        n_keep = int(keep.sum())
        if n_keep:
            try:
                events = orjson.loads(_joined(buf, starts[keep], ends[keep]))
            except orjson.JSONDecodeError:
                raise _Invalid from None
            if len(events) != n_keep or not all(type(e) is dict for e in events):
                raise _Invalid
        big = np.flatnonzero(huge & (~skip | (not validated)))
        if not len(big):
            return events
        # events over HUGE_EVENT_BYTES, read field by field, put back in file order
        order = np.flatnonzero(keep).tolist()
        for i in big.tolist():
            raw = buf[int(starts[i]) : int(ends[i])]
            if not validated and _suspect(raw):
                raise _Invalid
            event = _big_event(raw)
            if not skip[i]:
                events.append(event)
                order.append(i)
        return [events[k] for k in np.argsort(order, kind="stable").tolist()]

    # ---- outside the array ------------------------------------------------------------------
    def _parse_metadata(self, head: bytes, head_at: int, tail: bytes, tail_at: int) -> None:
        if not head:  # bare array: only whitespace may follow
            extra = _skip_ws(tail, 0)
            if extra < len(tail):
                self._fail(tail_at + extra, "trailing characters after the traceEvents array")
            return
        placeholder = b'"traceEvents":null'
        text = head + placeholder + tail
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            error = _ORJSON_POS.sub("", str(e))
        else:
            error = ""
        if error:
            found = _error_at(text)
            if found is None:
                raise TraceError(f"invalid JSON outside traceEvents ({error})", path=self.path)
            p, problem = found
            if p < len(head):
                self._fail(head_at + p, problem)
            self._fail(tail_at + max(p - len(head) - len(placeholder), 0), problem)
        if doc.get("traceEvents") is not None:
            raise TraceError("the JSON object has two traceEvents keys", path=self.path)
        doc.pop("traceEvents", None)
        self.metadata = doc


def _error_at(data: bytes) -> tuple[int, str] | None:
    """(byte offset, problem) of the first JSON error in data per msgspec; None if it accepts."""
    try:
        _ANY.decode(data)
    except RecursionError:
        return 0, "values nested too deeply"
    except msgspec.DecodeError as e:
        text = str(e).removeprefix("JSON is malformed: ")
        if text.startswith("Input data was truncated"):
            return len(data), "the JSON ends early (the file is truncated)"
        m = _MSGSPEC_BYTE.search(text)
        if m:
            return int(m.group(1)), text[: m.start()]
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as u:
            return u.start, f"{text} ({u.reason})"
        return len(data), text
    return None


def _big_event(raw: bytes) -> dict[str, Any]:
    """The fields the engine reads from one event over HUGE_EVENT_BYTES (_BigEvent)."""
    try:
        head = _BIG_EVENT.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise _Invalid from None
    event = {
        f: v for f in _BigEvent.__struct_fields__ if (v := getattr(head, f)) is not msgspec.UNSET
    }
    args = event.get("args")
    if args is not None:
        raw_args = bytes(args)
        if len(raw_args) > HUGE_EVENT_BYTES:
            event["args"] = OversizedArgs(len(raw_args))
        else:
            try:
                event["args"] = orjson.loads(raw_args)
            except orjson.JSONDecodeError:
                raise _Invalid from None
    return event


def _suspect(data: bytes) -> bool:
    """True when data may hold what msgspec lets pass in the values it skips and orjson refuses:
    text that is not UTF-8, or a number too large for a double (one with an exponent of three
    digits or more, or with LONG_DIGITS digits in a row). Linear, a few array passes."""
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return True
    a = np.frombuffer(data, dtype=np.uint8)
    n = len(a)
    e = np.flatnonzero((a | 0x20) == ord("e"))
    e = e[(e > 0) & (e + 4 < n)]
    if len(e):
        e = e[_DIGIT[a[e - 1]]]
        j = e + 1 + ((a[e + 1] == ord("+")) | (a[e + 1] == ord("-")))
        j = j[j + 2 < n]
        if (_DIGIT[a[j]] & _DIGIT[a[j + 1]] & _DIGIT[a[j + 2]]).any():
            return True
    # a run of LONG_DIGITS digits holds two samples LONG_DIGITS // 2 apart: check those first
    step = LONG_DIGITS // 2
    sampled = _DIGIT[a[::step]]
    for k in np.flatnonzero(sampled[:-1] & sampled[1:]).tolist():
        if data[k * step : (k + 1) * step + 1].isdigit():
            return True
    return False


def _not_json(start: bytes) -> str:
    if start[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(start) > 1 and 0 in start[:4]):
        return "not UTF-8 JSON (UTF-16 or UTF-32 text?): a trace is read as UTF-8"
    return "not a JSON trace: it does not start with '{' or '['"


def _decodes_to(raw: bytes, text: str) -> bool:
    try:
        return bool(orjson.loads(raw) == text)
    except orjson.JSONDecodeError:
        return False


def _skip_ws(buf: bytes, i: int) -> int:
    """The index of the first non-whitespace byte at or after i (len(buf) if none)."""
    n = len(buf)
    while i < n and buf[i] in _JSON_WS:
        i += 1
    return i


def _joined(buf: bytes, starts: np.ndarray, ends: np.ndarray) -> bytes:
    """'[' + the pieces buf[s:e] joined by commas + ']' (runs of adjacent pieces sliced once)."""
    s, e = starts.tolist(), ends.tolist()
    return b"[" + b",".join(buf[i:j] for i, j in zip(s, e, strict=True)) + b"]"


def _string_quotes(a: np.ndarray) -> np.ndarray:
    """Positions of the quotes that open or close strings (escaped quotes removed).

    A quote is escaped when an odd run of backslashes precedes it; runs are measured with
    array operations, so a string of a million escapes costs no Python loop.
    """
    q = np.flatnonzero(a == _QUOTE)
    if not len(q):
        return q
    after_backslash = q[(q > 0) & (a[np.maximum(q - 1, 0)] == _BACKSLASH)]
    if not len(after_backslash):
        return q
    slash = a == _BACKSLASH
    run_starts = np.flatnonzero(slash & ~np.concatenate([[False], slash[:-1]]))
    first = run_starts[np.searchsorted(run_starts, after_backslash, side="right") - 1]
    escaped = after_backslash[(after_backslash - first) % 2 == 1]
    return np.setdiff1d(q, escaped, assume_unique=True)


def _brackets(
    a: np.ndarray, quotes: np.ndarray, *, commas: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Brackets (and commas) outside strings: positions, and the nesting depth after each.

    a must start outside any string; depth is relative to its start.
    """
    delta = _DEPTH_DELTA[a]
    mask = delta != 0
    if commas:
        mask |= a == _COMMA
    pos = np.flatnonzero(mask)
    if len(quotes):
        pos = pos[(np.searchsorted(quotes, pos) & 1) == 0]
    return pos, np.cumsum(delta[pos], dtype=np.int64)


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


def _plain(rows: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    """Mask: no backslash before the first quote of the row (the raw bytes are the value)."""
    slash = rows == _BACKSLASH
    before = np.cumsum(quotes, axis=1) == 0
    return ~(slash & before).any(axis=1)


def _fast_skips(
    a: np.ndarray, ph_quote: np.ndarray, skip_cats: tuple[bytes, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(skip, known) per event, skip_head's rule on the raw values; known: they were read.

    A value with an escape is not known (its raw bytes are not its text): skip_head decides.
    """
    ph, known = _string_value(a, ph_quote, b'"ph"')
    known &= _at(a, ph + 1, b'"')
    skip = known & np.isin(a[ph], _FAST_SKIP_PH)
    cat, has_cat = _string_value(a, _next_key(a, ph + 1), b'"cat"')
    known &= has_cat
    cats = _window(a, cat, _CAT_WINDOW)
    quotes = cats == _QUOTE
    known &= quotes.any(axis=1) & _plain(cats, quotes)
    packed = _packed(cats)
    for c in skip_cats:
        skip |= known & _starts_with(cats, packed, c + b'"')
    # names matter only for runtime calls (cuda_runtime, cuda_driver, legacy Runtime)
    is_runtime = np.logical_or.reduce([_starts_with(cats, packed, p) for p in RUNTIME_CAT_PREFIXES])
    runtime = np.flatnonzero(known & ~skip & is_runtime)
    if len(runtime):
        cat_end = cat[runtime] + quotes[runtime].argmax(axis=1)
        name, has_name = _string_value(a, _next_key(a, cat_end), b'"name"')
        names = _window(a, name, _NAME_WINDOW)
        name_quotes = names == _QUOTE
        known[runtime] = has_name & _plain(names, name_quotes)
        packed_names = _packed(names)
        for n in _FAST_SKIP_NAMES:
            skip[runtime] |= known[runtime] & _starts_with(names, packed_names, n)
    return skip, known
