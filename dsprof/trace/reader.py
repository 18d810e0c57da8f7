"""Stream a Kineto Chrome-trace file into chunks of event dicts, without holding the whole document.

A multi-GB trace parsed in one `orjson.loads` costs several times its size in Python dicts. Here
the (decompressed) bytes are read in CHUNK_BYTES pieces, only whole events are handed to orjson,
and the kinds no analysis reads are never built at all. Everything outside the `traceEvents`
array (deviceProperties, distributedInfo, baseTimeNanoseconds, which Kineto writes *after* the
events) is kept as raw bytes and parsed once at the end. Both layouts are accepted: the usual
`{"traceEvents": [...], ...}` object and a bare `[...]` array.

Exact JSON: every byte of the file is checked by a real parser. The events kept are decoded by
msgspec straight into Event records (dsprof.trace.events: only the fields the engine reads are
built); the ones skipped, and whatever lies between events, are validated by msgspec without
being built (about ten times cheaper). What msgspec lets pass in the values it does not build and
orjson refuses (text that is not UTF-8, numbers beyond a double) is found by scan.suspect() and
then judged by orjson. What they refuse is refused, with the line and column in the file
(jsonfile.json_position); what both accept is read, a UTF-8 byte-order mark included. Two paths
find the events:

- the fast path: Kineto writes every event as an object whose first key is "ph". A `{` followed
  by `"ph":` cannot occur inside a JSON string (a quote there would be escaped), so those
  positions are event starts, found with one numpy pass; the kinds to skip are read from the
  "ph", "cat" and "name" values right after each start. A chunk is accepted only when every
  piece parses as exactly one object, the bytes between pieces are a comma and whitespace, and
  suspect() finds nothing in it.
- the exact path (a chunk the fast path cannot prove): a bracket scan outside strings
  (scan.Brackets) finds the array's elements, one msgspec pass validates them all and reads each
  object's ph/cat/name.

Both skip by the same rule (skip_head) and validate with the same parsers, so the fast path
never accepts text the exact path refuses. Time is linear in the file whatever its shape: when
a read ends inside an event, the next read is as large as the buffer, the bracket scan resumes
where the last read left it (a 64 MB event is scanned once, not once per read), the fast path
waits until the event has ended, and the part read so far is validated only each time it has
grown PROBE_GROWTH times; an event over HUGE_EVENT_BYTES is read field by field, its args left
undecoded when they are that large too.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

import msgspec
import numpy as np
import orjson

from dsprof.core.errors import TraceError
from dsprof.trace import jsonfile, scan
from dsprof.trace.events import (
    EVENTS,
    Event,
    EventKeys,
    OversizedArgs,
    args_value,
    decode_events,
)
from dsprof.trace.scan import PYTHON_CAT, SKIP_CATS, skip_head

# 1 MiB of JSON per orjson call. One chunk's transient dicts and scan arrays cost ~20x its bytes,
# so the chunk sets the parser's working memory; measured on hta/rank0 (25 MB) and a 245 MB
# trace: 1 MiB parses as fast as 4 MiB and needs 57 MB over the imports instead of 164 MB.
CHUNK_BYTES = 1 << 20
# An event longer than this is read field by field (msgspec) instead of as one dict, and its
# args are not decoded when they alone are longer: real events are under 100 kB (a long
# templated kernel name, the shapes of an op on hundreds of tensors).
HUGE_EVENT_BYTES = 1 << 20
# A long element is probed for errors when the buffer holding it has grown this many times
# since its last probe (_probe_long).
PROBE_GROWTH = 8
_COMMA = 0x2C
_KEY = "traceEvents"
_KEY_SLACK = 256  # bytes after the first plain key that _find_key's first scan covers


class _Head(msgspec.Struct):
    """The fields an event is classified by; msgspec validates and skips the others."""

    ph: Any = None
    cat: Any = None
    name: Any = None


class _BigEvent(EventKeys):
    """The fields the engine reads from an event longer than HUGE_EVENT_BYTES; args stay raw."""

    args: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_VALUES = msgspec.json.Decoder(list[msgspec.Raw])
_HEADS = msgspec.json.Decoder(list[_Head])
_BIG_EVENT = msgspec.json.Decoder(_BigEvent)


class _Invalid(Exception):
    """A piece the fast path cannot prove valid (the exact path decides, and locates errors)."""


class TraceReader:
    """Iterate `chunks()` for lists of Events; afterwards `metadata` holds the other keys."""

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
        self._scratch = np.empty(0, dtype=np.uint8)  # _padded()'s array
        # the buffer at file offset _scan_at holds no whole element yet: the exact path's scan
        # of it resumes after each read
        self._scan = scan.Brackets()
        self._scan_at = -1
        self._probed = (-1, 0)  # (offset, length) of the buffer _probe_long last probed

    def chunks(self) -> Iterator[list[Event]]:
        """Lists of kept events (dsprof.trace.events.Event), in file order."""
        with jsonfile.open_trace(self.path) as f:
            self._f = f
            head, head_at, rest, rest_at = self._find_array()
            tail, tail_at = yield from self._events(rest, rest_at)
        self._parse_metadata(head, head_at, tail, tail_at)

    # ---- reading ----------------------------------------------------------------------------
    def _more(self, n: int) -> bytes:
        assert self._f is not None
        data = jsonfile.read_bytes(self._f, n, self.path)
        self.uncompressed_bytes += len(data)
        return data

    def _rest(self) -> bytes:
        parts = []
        while data := self._more(self.chunk_bytes):
            parts.append(data)
        return b"".join(parts)

    def _fail(self, offset: int, problem: str) -> NoReturn:
        raise TraceError(
            f"invalid JSON at {jsonfile.json_position(self.path, offset)}: {problem}",
            path=self.path,
        )

    def _fail_decode(self, e: Exception, base: int, data: bytes) -> NoReturn:
        """Raise for a msgspec error in data, whose byte 0 is at file offset base."""
        p, problem = jsonfile.decode_error(e, data)
        if p == len(data) and problem.startswith("the JSON ends early"):
            raise TraceError(problem, path=self.path)
        self._fail(base + p, problem)

    # ---- the array --------------------------------------------------------------------------
    def _find_array(self) -> tuple[bytes, int, bytes, int]:
        """(bytes before the key, their offset, bytes after the array's '[', their offset)."""
        buf = b""
        want = self.chunk_bytes
        while True:
            data = self._more(want)
            buf += data
            start = len(jsonfile.BOM) if buf.startswith(jsonfile.BOM) else 0
            first = jsonfile.skip_ws(buf, start)
            if first < len(buf):
                if buf[first] == ord("["):  # a bare array of events
                    return b"", 0, buf[first + 1 :], first + 1
                if buf[first] != ord("{"):
                    raise TraceError(jsonfile.not_json(buf[first:]), path=self.path)
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
        """(opening quote of the root's "traceEvents" key, its '['), or None until more is read.

        The scan (_scan_key) goes first over the bytes up to the first plain "traceEvents" and
        a little after: what it finds there is what a scan of all of buf finds first (each
        answer depends only on the bytes before it), and Kineto writes the key after a few
        hundred bytes of metadata, so the events after it are not scanned twice.
        """
        first = buf.find(b'"traceEvents"', root)
        if first >= 0:
            found = self._scan_key(buf[: first + _KEY_SLACK], root)
            if found is not None:
                return found
        return self._scan_key(buf, root)

    def _scan_key(self, buf: bytes, root: int) -> tuple[int, int] | None:
        """_find_key over all of buf: one vectorised pass (quotes, brackets, depths)."""
        a = np.frombuffer(buf, dtype=np.uint8)
        quotes = scan.string_quotes(a)
        opens, closes = quotes[0::2], quotes[1::2]
        opens = opens[: len(closes)]  # the last string may continue in the next read
        pos, depth = scan.brackets(a, quotes)
        # depth just inside each string: that of the last bracket before it
        i = np.searchsorted(pos, opens) - 1
        inside = np.where(i >= 0, depth[np.maximum(i, 0)], 0) if len(pos) else np.zeros_like(opens)
        below = np.flatnonzero(depth < 1)
        if len(below):  # the root closed: a key after it is not the root's
            keep = opens < pos[below[0]]
            opens, closes, inside = opens[keep], closes[keep], inside[keep]
        length = closes - opens - 1
        escaped = np.zeros(len(opens), dtype=bool)
        slashes = np.flatnonzero(a == ord("\\"))
        if len(slashes) and len(opens):
            j = np.searchsorted(opens, slashes, side="right") - 1
            ok = (j >= 0) & (slashes < closes[np.maximum(j, 0)])
            escaped[j[ok]] = True
        candidates = np.flatnonzero((inside == 1) & ((length == len(_KEY)) | escaped))
        for k in candidates.tolist():
            o, c = int(opens[k]), int(closes[k])
            raw = buf[o : c + 1]
            if raw != b'"traceEvents"' and not (escaped[k] and jsonfile.decodes_to(raw, _KEY)):
                continue
            colon = jsonfile.skip_ws(buf, c + 1)
            if colon >= len(buf):
                return None
            if buf[colon] != ord(":"):
                continue  # a value, not a key
            value = jsonfile.skip_ws(buf, colon + 1)
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
        found = jsonfile.error_at(data)
        if found is None:
            return
        p, problem = found
        if not final and jsonfile.cut_token(data, p):
            return  # the last token (a number, a literal, an escape) is cut by the read
        self._fail(at + start + p, problem)

    def _probe_long(self, buf: bytes, at: int) -> None:
        """_probe_elements for an element longer than a read (is it valid so far?), once it is
        PROBE_GROWTH times as long as when last probed: an error early in a runaway element
        (an unclosed string) is found before the rest of the file is held, and a 64 MB event
        is validated about once more, not once per read."""
        last_at, last_len = self._probed
        if len(buf) <= self.chunk_bytes or (last_at == at and len(buf) < PROBE_GROWTH * last_len):
            return
        self._probed = (at, len(buf))
        self._probe_elements(buf, at)

    def _probe_elements(self, buf: bytes, at: int) -> None:
        """_probe for the array elements that start buf (file offset at), a leading ',' off."""
        x = jsonfile.skip_ws(buf, 0)
        if self._after_element and buf[x : x + 1] == b",":
            x += 1
        self._probe(b"".join((b"[", memoryview(buf)[x:])), 0, at + x - 1)  # one copy

    # ---- the events -------------------------------------------------------------------------
    def _events(self, buf: bytes, at: int) -> Generator[list[Event], None, tuple[bytes, int]]:
        """Yield event chunks; return the bytes after the array's ']' and their offset.

        at: the file offset of buf[0].
        """
        want = self.chunk_bytes
        unseen = bool(buf)  # buf holds bytes the fast path has not tried (a small file's all)
        while True:
            data = self._more(want)
            buf += data
            if data and self._scan_at == at and not self._separated(buf):
                # still inside one element: only the new bytes were scanned
                self._probe_long(buf, at)
                want = max(want, len(buf))
                continue
            if (data or unseen) and self.fast:
                unseen = False
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

    def _parse_exact(self, buf: bytes, at: int, *, eof: bool) -> tuple[list[Event], int, bool]:
        """(events, bytes consumed, array closed) for the whole elements at the start of buf."""
        a = np.frombuffer(buf, dtype=np.uint8)
        if self._scan_at == at:  # the rest of a long element: the scan resumes
            quotes, pos, depth = self._scan.feed(a)
        else:
            quotes = scan.string_quotes(a)
            pos, depth = scan.brackets(a, quotes, commas=True)
        closed = np.flatnonzero(depth < 0)
        if len(closed):
            end = int(pos[closed[0]])
            n = int(closed[0])
            events = self._elements(buf, end, at, quotes, pos[:n], depth[:n], final=True)
            if buf[end] != ord("]"):
                self._fail(at + end, "expected ']' to close traceEvents")
            return events, end + 1, True
        commas = self._commas(buf, pos, depth)
        if not len(commas):
            if self._scan_at != at:
                self._scan, self._scan_at = scan.Brackets.resume(a, quotes, pos, depth), at
            if not eof:
                self._probe_long(buf, at)
            return [], 0, False
        end = int(commas[-1])
        n = int(np.searchsorted(pos, end))
        events = self._elements(buf, end, at, quotes, pos[:n], depth[:n], final=False)
        return events, end, False

    def _commas(self, buf: bytes, pos: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """The commas between the array's elements in buf (pos and depth: the bracket scan's)."""
        commas = pos[(depth == 0) & (np.frombuffer(buf, dtype=np.uint8)[pos] == _COMMA)]
        if self._after_element and len(commas) and commas[0] == jsonfile.skip_ws(buf, 0):
            commas = commas[1:]  # the separator before this chunk's first element
        return commas

    def _separated(self, buf: bytes) -> bool:
        """True when buf, a long element's start and more bytes read, holds the element's end:
        a comma after it, or the array's ']' (only the bytes read since are scanned)."""
        _, pos, depth = self._scan.feed(np.frombuffer(buf, dtype=np.uint8))
        return bool(len(self._commas(buf, pos, depth)) or (depth < 0).any())

    def _elements(
        self,
        buf: bytes,
        end: int,
        at: int,
        quotes: np.ndarray,
        pos: np.ndarray,
        depth: np.ndarray,
        *,
        final: bool,
    ) -> list[Event]:
        """The events among the array elements in buf[:end] (exact path)."""
        first = jsonfile.skip_ws(buf, 0)
        lead = first
        if self._after_element:
            if first < end and buf[first] == _COMMA:
                lead = first + 1
            elif first >= end and final:
                return []  # '...} ]'
            else:
                self._fail(at + first, "expected ',' or ']' after an element of traceEvents")
        if jsonfile.skip_ws(buf, lead) >= end:
            if self._after_element or not final:
                self._fail(at + jsonfile.skip_ws(buf, lead), "expected a value after ','")
            return []  # '[ ]'
        text = b"".join((b"[", memoryview(buf)[lead:end], b"]"))  # one copy of a long element
        base = at + lead - 1  # the file offset of text[0] (the '[' is not in the file)
        try:
            n_items = len(_VALUES.decode(text))  # validates every element
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as e:
            self._fail_decode(e, base, text)
        if scan.suspect(text):
            self._check_strictly(text, base)
        self._after_element = True
        a = np.zeros(end + scan.PAD, dtype=np.uint8)
        a[:end] = np.frombuffer(buf, dtype=np.uint8, count=end)
        before = np.concatenate([[0], depth[:-1]])
        starts = pos[(depth == 1) & (before == 0) & (a[pos] == ord("{"))]
        ends = pos[(depth == 0) & (a[pos] == ord("}"))] + 1
        self.events_total += n_items
        self.not_objects += n_items - len(starts)
        if len(ends) != len(starts) or n_items < len(starts):
            raise TraceError("the trace reader lost track of the events", path=self.path)
        adjacent = n_items == len(starts)  # no other value between the objects
        skip, known = scan.top_level_skips(
            a, quotes[quotes < end], pos, depth, starts, ends, self.skip_cats
        )
        unknown = np.flatnonzero(~known & ~skip)
        if len(unknown):  # values with escapes: decoded
            heads = _HEADS.decode(_joined(buf, starts, ends, unknown, adjacent=adjacent))
            cats = self._skip_cats_str
            skip[unknown] = [skip_head(h.ph, h.cat, h.name, cats) for h in heads]
        try:
            return self._build(buf, starts, ends, skip, validated=True, adjacent=adjacent)
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
            problem = jsonfile.ORJSON_POS.sub("", str(e))
            self._fail(base + len(decoded[: e.pos].encode()), problem)

    def _parse_fast(self, buf: bytes) -> tuple[list[Event], int] | None:
        """(events, bytes consumed) for the whole events in buf, or None to use the exact path.

        Events run from one start to the next; the last start of buf is where the next chunk
        begins (its event may continue in the next read).
        """
        a = self._padded(buf)
        starts, ph_quote, other_ph = scan.event_starts(a)
        if len(starts) < 2:
            return None
        # before the first start: whitespace, and one comma when an element came before
        prefix = buf[: int(starts[0])].strip(jsonfile.JSON_WS)
        if prefix != (b"," if self._after_element else b""):
            return None
        if len(other_ph) and other_ph[0] < starts[-1]:
            return None  # an event not written "ph" first would hide inside its neighbour
        # each event ends at the '}' before the ',' before the next start
        comma = scan.step_ws(a, starts[1:] - 1, -1)
        close = scan.step_ws(a, comma - 1, -1)
        if not (scan.at(a, comma, b",") & scan.at(a, close, b"}")).all():
            return None
        starts, ph_quote, ends = starts[:-1], ph_quote[:-1], close + 1
        if scan.suspect(buf, int(ends[-1])):  # what msgspec would let pass: orjson decides
            return None
        skip, known = scan.fast_skips(a, ph_quote, self.skip_cats)
        unknown = np.flatnonzero(~known & ~skip)
        if len(unknown):  # first keys other than "ph", "cat", "name": read them
            try:
                heads = _HEADS.decode(_joined(buf, starts, ends, unknown))
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

    def _padded(self, buf: bytes) -> np.ndarray:
        """buf's bytes with PAD zero bytes after (no bounds checks in the scans), in an array
        the reader keeps from chunk to chunk: a fresh one is memory the system must map and
        zero for every chunk."""
        n = len(buf) + scan.PAD
        if len(self._scratch) < n:
            self._scratch = np.empty(max(n, 2 * len(self._scratch)), dtype=np.uint8)
        a = self._scratch[:n]
        a[: len(buf)] = np.frombuffer(buf, dtype=np.uint8)
        a[len(buf) :] = 0
        return a

    def _build(
        self,
        buf: bytes,
        starts: np.ndarray,
        ends: np.ndarray,
        skip: np.ndarray,
        *,
        validated: bool,
        adjacent: bool = True,
    ) -> list[Event]:
        """The kept events (not skip) in file order; raises _Invalid when a piece is not exactly
        one valid object. validated: the skipped pieces were checked already. Either way the
        caller has checked the bytes with scan.suspect() (or orjson)."""
        huge = (ends - starts) > HUGE_EVENT_BYTES
        if not validated:
            quiet = np.flatnonzero(skip & ~huge)
            if len(quiet):
                try:
                    # validated, not built (each piece starts with '{': a count that matches
                    # means one object each, as the kept ones below)
                    n = len(_VALUES.decode(_joined(buf, starts, ends, quiet)))
                except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                    raise _Invalid from None
                if n != len(quiet):
                    raise _Invalid
        keep = ~skip & ~huge
        events: list[Event] = []
        n_keep = int(keep.sum())
        if n_keep:
            kept = np.flatnonzero(keep)
            try:
                try:
                    events = EVENTS.decode(_joined(buf, starts, ends, kept, adjacent=adjacent))
                except msgspec.ValidationError:  # an args that is not an object: one by one
                    s, e = starts[kept].tolist(), ends[kept].tolist()
                    events = decode_events([buf[i:j] for i, j in zip(s, e, strict=True)])
            except (msgspec.DecodeError, orjson.JSONDecodeError, ValueError, RecursionError):
                raise _Invalid from None
            if len(events) != n_keep:
                raise _Invalid
        big = np.flatnonzero(huge & (~skip | (not validated)))
        if not len(big):
            return events
        # events over HUGE_EVENT_BYTES, read field by field, put back in file order
        order = np.flatnonzero(keep).tolist()
        for i in big.tolist():
            event = _big_event(buf[int(starts[i]) : int(ends[i])])
            if not skip[i]:
                events.append(event)
                order.append(i)
        return [events[k] for k in np.argsort(order, kind="stable").tolist()]

    # ---- outside the array ------------------------------------------------------------------
    def _parse_metadata(self, head: bytes, head_at: int, tail: bytes, tail_at: int) -> None:
        if not head:  # bare array: only whitespace may follow
            extra = jsonfile.skip_ws(tail, 0)
            if extra < len(tail):
                self._fail(tail_at + extra, "trailing characters after the traceEvents array")
            return
        placeholder = b'"traceEvents":null'
        text = head + placeholder + tail
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            error = jsonfile.ORJSON_POS.sub("", str(e))
        else:
            error = ""
        if error:
            found = jsonfile.error_at(text)
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


def _big_event(raw: bytes) -> Event:
    """The fields the engine reads from one event over HUGE_EVENT_BYTES (_BigEvent)."""
    try:
        head = _BIG_EVENT.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise _Invalid from None
    event = Event(**{f: getattr(head, f) for f in EventKeys.__struct_fields__})
    if head.args is not msgspec.UNSET:
        if len(head.args) > HUGE_EVENT_BYTES:
            event.args = OversizedArgs(nbytes=len(head.args))
        else:
            try:
                event.args = args_value(orjson.loads(bytes(head.args)))
            except (orjson.JSONDecodeError, msgspec.DecodeError, msgspec.ValidationError):
                raise _Invalid from None
    return event


def _joined(
    buf: bytes, starts: np.ndarray, ends: np.ndarray, idx: np.ndarray, *, adjacent: bool = True
) -> bytes:
    """'[' + the pieces buf[starts[i]:ends[i]] for i in idx (ascending) + ']', comma-separated.
    adjacent: consecutive pieces have only a separator between them, so a run of them is
    sliced once (False when other array elements may lie between)."""
    if adjacent:
        breaks = np.flatnonzero(np.diff(idx) != 1)
        first = idx[np.concatenate([[0], breaks + 1])]
        last = idx[np.concatenate([breaks, [len(idx) - 1]])]
    else:
        first = last = idx
    s, e = starts[first].tolist(), ends[last].tolist()
    return b"[" + b",".join(map(buf.__getitem__, map(slice, s, e))) + b"]"
