"""Vectorised scans over JSON bytes, for the trace reader (dsprof.trace.reader).

numpy passes over a chunk of the file find what a parser would otherwise have to build objects
for: the quotes that delimit strings (escapes resolved without a Python loop), brackets and
commas outside strings with their depth (Brackets: resumed read after read, each byte once),
the starts of Kineto events, and the "ph", "cat" and
"name" values that decide whether an event is one no analysis reads (skip_head is the rule;
fast_skips and top_level_skips apply it to raw bytes). suspect() flags what msgspec lets pass
in the values it skips and orjson refuses (bad UTF-8, numbers too large for a double).
"""

from __future__ import annotations

import codecs
from typing import Any

import numpy as np

_QUOTE, _BACKSLASH, _COMMA = 0x22, 0x5C, 0x2C
DEPTH_DELTA = np.zeros(256, dtype=np.int8)
DEPTH_DELTA[[ord("{"), ord("[")]] = 1
DEPTH_DELTA[[ord("}"), ord("]")]] = -1
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
PAD = 64  # zero bytes after a chunk: the longest literal or window read past a position
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[ord("0") : ord("9") + 1] = True
# digits in a row from which a number may not fit a double with a two-digit exponent (suspect)
LONG_DIGITS = 200
_WINDOW_SAMPLES = (7, 19, 31, 43, 50, 59, 71, 83, 97)  # offsets in a window, for suspect()
_NUMBER_CHARS = frozenset(b"0123456789.-+")
_BEFORE_VALUE = frozenset(b":,[ \t\r\n")
# a block with a bracket or comma in fewer than 1 byte of this many is scanned mark by mark
# (ordinary events), a denser one byte by byte (a list of shapes: every third byte a mark)
_DENSE_MARKS = 8
_BLOCK = (1 << 17) - 64  # suspect() scans blocks whose temporaries stay in cache (and the heap)
_SCAN_BLOCK = _BLOCK  # and so does Brackets


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


def suspect(data: bytes, end: int | None = None) -> bool:
    """True when data[:end] may hold what msgspec lets pass in the values it skips and orjson
    refuses: text that is not UTF-8, or a number too large for a double (one with an exponent
    of three digits or more, or with LONG_DIGITS digits in a row). Linear, a few array passes
    over blocks that stay in the CPU's cache; data is not copied."""
    n = len(data) if end is None else end
    a = np.frombuffer(data, dtype=np.uint8, count=n)
    if n and a.max() >= 0x80:  # not ASCII: is it UTF-8?
        try:
            codecs.utf_8_decode(memoryview(data)[:n], "strict", True)
        except UnicodeDecodeError:
            return True
    step = LONG_DIGITS // 2
    # in blocks that stay in the CPU's cache (a block overlaps the next by 4 bytes: the
    # window of the exponent test); an 'e' after a digit with a digit 3 bytes on (the third
    # digit of an unsigned exponent, the second of a signed one) is a candidate, checked exactly
    for lo in range(0, max(n - 4, 0), _BLOCK):
        block = a[lo : lo + _BLOCK + 4]
        digit = (block - np.uint8(ord("0"))) < 10  # uint8 arithmetic wraps: one compare
        e = (block[1:-3] | 0x20) == ord("e")
        e &= digit[:-4]
        e &= digit[4:]
        for p in (np.flatnonzero(e) + lo + 1).tolist():
            if _exponent_overflows(data, n, p):
                return True
    # a run of LONG_DIGITS digits holds a window of step + 1 bytes from a multiple of step:
    # the window's ends are sampled first, then bytes at other offsets in it (a shape list
    # has a digit every step bytes, rarely at all of these), then the few windows left exactly
    sampled = (a[::step] - np.uint8(ord("0"))) < 10
    windows = sampled[:-1] & sampled[1:]
    for offset in _WINDOW_SAMPLES:
        if not windows.any():
            break
        windows &= (a[offset::step][: len(windows)] - np.uint8(ord("0"))) < 10
    for k in np.flatnonzero(windows).tolist():
        if data[k * step : (k + 1) * step + 1].isdigit():
            return True
    return False


def _exponent_overflows(data: bytes, n: int, p: int) -> bool:
    """data[p] is an 'e' after a digit: is it the exponent of a number token, of 3+ digits,
    within data[:n]?"""
    j = p + 1 + (data[p + 1] in b"+-")
    if j + 3 > n or not data[j : j + 3].isdigit():
        return False
    # a number token, not hex in a string ("0x7f3e912..."): what precedes its digits
    while p > 0 and data[p - 1] in _NUMBER_CHARS:
        p -= 1
    return p == 0 or data[p - 1] in _BEFORE_VALUE


def string_quotes(a: np.ndarray) -> np.ndarray:
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


def brackets(
    a: np.ndarray, quotes: np.ndarray, *, commas: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Brackets (and commas) outside strings: positions, and the nesting depth after each.

    a must start outside any string; depth is relative to its start.
    """
    delta = DEPTH_DELTA[a]
    mask = delta != 0
    if commas:
        mask |= a == _COMMA
    pos = np.flatnonzero(mask)
    if len(quotes):
        pos = pos[(np.searchsorted(quotes, pos) & 1) == 0]
    return pos, np.cumsum(delta[pos], dtype=np.int64)


class Brackets:
    """The brackets and commas outside strings of a buffer that grows by reads, scanned once.

    The buffer starts between the elements of an array (depth 0, outside any string). feed()
    scans only the bytes it has not seen, from the state where the last scan stopped (depth, in
    a string or not, an odd run of backslashes before), so an event that takes many reads to
    arrive costs one pass, not one per read. It keeps what the exact path reads: the brackets
    and commas entered or left at depth 0 or 1 (an element's own keys, never what its values
    nest), with the depth after each, and the quotes of the strings at depth 0 or 1. numpy
    passes over blocks that stay in the CPU's cache: a shape list of 64 MB (every third byte a
    bracket or a comma) costs about as much as 64 MB of ordinary events.
    """

    def __init__(self) -> None:
        self.scanned = 0  # bytes of the buffer scanned so far (what scanning costs: tests)
        self.depth = 0
        self.in_string = False
        self.odd_slashes = False  # the bytes scanned end with an odd run of backslashes
        self._pos: list[np.ndarray] = []
        self._depth: list[np.ndarray] = []
        self._quotes: list[np.ndarray] = []

    @classmethod
    def resume(
        cls, a: np.ndarray, quotes: np.ndarray, pos: np.ndarray, depth: np.ndarray
    ) -> Brackets:
        """The scan of a, as string_quotes and brackets(commas=True) found it, to be fed more."""
        self = cls()
        self.scanned = len(a)
        self.in_string = bool(len(quotes) & 1)
        trail = _slash_run(a[::-1])
        self.odd_slashes = bool(trail & 1)
        before = np.concatenate([[0], depth[:-1]])
        keep = np.minimum(before, depth) <= 1
        self._pos, self._depth = [pos[keep]], [depth[keep]]
        self._quotes = [_shallow_quotes(quotes, pos, depth, 0)]
        self.depth = int(depth[-1]) if len(depth) else 0
        return self

    def feed(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(quotes, positions, depths) over all of a, whose first self.scanned bytes are the
        ones fed before: the quotes of strings at depth 1 or less, the brackets and commas whose
        depth before or after is 1 or less, and the depth after each (relative to a[0])."""
        for lo in range(self.scanned, len(a), _SCAN_BLOCK):
            self._block(a[lo : lo + _SCAN_BLOCK], lo)
        self.scanned = max(self.scanned, len(a))
        for kept in (self._pos, self._depth, self._quotes):
            if len(kept) != 1:
                kept[:] = [np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)]
        return self._quotes[0], self._pos[0], self._depth[0]

    def _block(self, a: np.ndarray, lo: int) -> None:
        """Scan a (the bytes at lo) from the state the bytes before it left."""
        n = len(a)
        q = string_quotes(a)
        lead = _slash_run(a)
        if self.odd_slashes and lead < n and a[lead] == _QUOTE:
            # the run before this quote began in the last block: odd with those, it escapes
            q = q[1:] if len(q) and q[0] == lead else np.concatenate([[lead], q])
        trail = _slash_run(a[::-1])
        self.odd_slashes = bool((trail + (self.odd_slashes if trail == n else 0)) & 1)
        low = a | np.uint8(0x20)  # '[' and '{', ']' and '}' differ by this bit alone
        opening, closing, comma = low == ord("{"), low == ord("}"), a == _COMMA
        marks = opening | closing | comma
        if np.count_nonzero(marks) * _DENSE_MARKS < n:
            self._sparse(np.flatnonzero(marks), opening, closing, q, lo)
            return
        delta = opening.view(np.int8) - closing.view(np.int8)
        if len(q) or self.in_string:
            toggles = np.zeros(n, dtype=np.int8)
            toggles[q] = 1
            # parity of the quotes so far (an int8 sum wraps, its lowest bit does not)
            outside = (np.cumsum(toggles, dtype=np.int8) & 1).view(bool)
            if not self.in_string:
                outside = ~outside
            delta *= outside.view(np.int8)
            comma &= outside
            self.in_string ^= bool(len(q) & 1)
        d0 = self.depth
        if d0 - n > 1:  # too deep to come back to depth 1 in this block
            self.depth = d0 + int(delta.sum(dtype=np.int64))
            return
        depth = np.cumsum(delta, dtype=np.int32)  # relative to d0
        limit = min(1 - d0, n + 2)
        shallow = depth <= limit
        shallow |= (depth == limit + 1) & (delta > 0)  # an opening bracket from depth 1
        p = np.flatnonzero(shallow & ((delta != 0) | comma))
        self._pos.append(p + lo)
        self._depth.append(depth[p] + np.int64(d0))
        if len(q):
            self._quotes.append(q[depth[q] <= limit] + lo)
        self.depth = d0 + int(depth[-1])

    def _sparse(
        self, p: np.ndarray, opening: np.ndarray, closing: np.ndarray, q: np.ndarray, lo: int
    ) -> None:
        """_block's work for a block with few brackets and commas (p): per mark, not per byte."""
        if len(q) or self.in_string:  # marks after an odd count of quotes are in strings
            p = p[(np.searchsorted(q, p) & 1) == self.in_string]
            self.in_string ^= bool(len(q) & 1)
        delta = opening[p].view(np.int8) - closing[p].view(np.int8)
        depth = np.cumsum(delta, dtype=np.int64)
        depth += self.depth
        keep = depth - (delta > 0) <= 1  # before or after at depth 1 or less
        self._pos.append(p[keep] + lo)
        self._depth.append(depth[keep])
        if len(q):
            self._quotes.append(_shallow_quotes(q, p, depth, self.depth) + lo)
        if len(p):
            self.depth = int(depth[-1])


def _shallow_quotes(q: np.ndarray, p: np.ndarray, depth: np.ndarray, start: int) -> np.ndarray:
    """The quotes q at depth 1 or less: each at the depth after the last mark (p, depth) before
    it, start before the first."""
    i = np.searchsorted(p, q) - 1
    at_quote = depth[np.maximum(i, 0)] if len(p) else np.zeros(len(q), dtype=np.int64)
    at_quote[i < 0] = start
    return q[at_quote <= 1]


def _slash_run(a: np.ndarray) -> int:
    """How many backslashes a starts with."""
    if not len(a) or a[0] != _BACKSLASH:
        return 0
    other = a != _BACKSLASH
    return int(other.argmax()) if other.any() else len(a)


def at(a: np.ndarray, p: np.ndarray, literal: bytes) -> np.ndarray:
    """Mask: the bytes at positions p spell literal (a is zero-padded; p >= -PAD)."""
    ok = a[p] == literal[0]
    for i in range(1, len(literal)):
        ok &= a[p + i] == literal[i]
    return ok


def step_ws(a: np.ndarray, p: np.ndarray, step: int) -> np.ndarray:
    """Move each position in p by step (+1 or -1) while it is on whitespace (padding is not)."""
    p = p.copy()
    for _ in range(_MAX_WS):
        ws = _WS[a[p]]
        if not ws.any():
            break
        p[ws] += step
    return p


def event_starts(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of each '{' whose first key is "ph", of the quote that opens that key, and of
    the "ph" keys that are not first in their object (events another writer wrote, or nested)."""
    quote = np.flatnonzero(a == ord("h")) - 2  # '"ph"' is found from its rarer letter
    quote = quote[at(a, quote, b'"ph"')]
    quote = quote[at(a, step_ws(a, quote + 4, 1), b":")]  # a key, not the string "ph"
    brace = step_ws(a, quote - 1, -1)
    is_start = at(a, brace, b"{")
    return brace[is_start], quote[is_start], quote[~is_start]


def _string_value(a: np.ndarray, p: np.ndarray, key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(first character of the string value, mask where `key: "` is found at p)."""
    ok = at(a, p, key)
    colon = step_ws(a, p + len(key), 1)
    ok &= at(a, colon, b":")
    quote = step_ws(a, colon + 1, 1)
    ok &= at(a, quote, b'"')
    return quote + 1, ok


def _window(a: np.ndarray, p: np.ndarray, width: int) -> np.ndarray:
    """The width bytes from each position in p, one row each (width <= PAD)."""
    return a[p[:, None] + np.arange(width)]


def _next_key(a: np.ndarray, closing_quote: np.ndarray) -> np.ndarray:
    """Where the next key of an object is expected after a string value's closing quote."""
    comma = step_ws(a, closing_quote + 1, 1)
    return np.where(at(a, comma, b","), step_ws(a, comma + 1, 1), -1)


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
    plain = np.ones(len(rows), dtype=bool)
    slashed = np.flatnonzero((rows == _BACKSLASH).any(axis=1))  # rare: look closer
    if len(slashed):
        width = rows.shape[1]
        first = np.where(quotes[slashed].any(axis=1), quotes[slashed].argmax(axis=1), width)
        first_slash = (rows[slashed] == _BACKSLASH).argmax(axis=1)
        plain[slashed] = first_slash > first
    return plain


def fast_skips(
    a: np.ndarray, ph_quote: np.ndarray, skip_cats: tuple[bytes, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(skip, known) per event, skip_head's rule on the raw values; known: they were read.

    A value with an escape is not known (its raw bytes are not its text): skip_head decides.
    """
    ph, known = _string_value(a, ph_quote, b'"ph"')
    known &= at(a, ph + 1, b'"')
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


def top_level_skips(
    a: np.ndarray,
    quotes: np.ndarray,
    pos: np.ndarray,
    depth: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    skip_cats: tuple[bytes, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """(skip, known) for the objects [starts, ends) among an array's elements, skip_head's rule
    read from their own "ph", "cat" and "name" keys wherever they stand (the last of a repeated
    key, as a parser keeps it). a: the bytes, PAD zeros after; quotes, pos and depth: from
    string_quotes and brackets over them (elements at depth 0). known: False where a value
    has an escape or more whitespace than the scan steps over (skip_head decides)."""
    n = len(starts)
    skip = np.zeros(n, dtype=bool)
    known = np.ones(n, dtype=bool)
    opens = quotes[0::2]
    i = np.searchsorted(pos, opens) - 1
    keys = opens[np.where(i >= 0, depth[np.maximum(i, 0)], 0) == 1]

    def values(key: bytes) -> tuple[np.ndarray, np.ndarray]:
        """(object, first byte of the value) for each object's last `key`."""
        hit = keys[at(a, keys, key)]
        colon = step_ws(a, hit + len(key), 1)
        ok = at(a, colon, b":")
        hit, colon = hit[ok], colon[ok]
        obj = np.searchsorted(starts, hit, side="right") - 1
        inside = (obj >= 0) & (hit < ends[np.maximum(obj, 0)])
        obj, colon = obj[inside], colon[inside]
        if not len(obj):
            return obj, colon
        last = np.flatnonzero(np.append(obj[1:] != obj[:-1], True))  # obj is ascending
        return obj[last], step_ws(a, colon[last] + 1, 1)

    obj, value = values(b'"ph"')
    string = a[value] == _QUOTE
    escaped = string & (a[value + 1] == _BACKSLASH)
    one_char = string & ~escaped & (a[value + 2] == _QUOTE)
    known[obj[escaped | _WS[a[value]]]] = False
    skip[obj[one_char & np.isin(a[value + 1], _FAST_SKIP_PH)]] = True
    obj, value = values(b'"cat"')
    known[obj[_WS[a[value]]]] = False
    string = a[value] == _QUOTE
    obj, value = obj[string], value[string] + 1
    cats = _window(a, value, _CAT_WINDOW)
    cat_quotes = cats == _QUOTE
    plain_cat = _plain(cats, cat_quotes)
    known[obj[~plain_cat]] = False
    packed_cats = _packed(cats)
    for c in skip_cats:
        skip[obj[plain_cat & _starts_with(cats, packed_cats, c + b'"')]] = True
    runtime = plain_cat & np.logical_or.reduce(
        [_starts_with(cats, packed_cats, p) for p in RUNTIME_CAT_PREFIXES]
    )
    is_runtime = np.zeros(n, dtype=bool)
    is_runtime[obj[runtime]] = True
    obj, value = values(b'"name"')
    known[obj[is_runtime[obj] & _WS[a[value]]]] = False
    keep = is_runtime[obj] & (a[value] == _QUOTE)
    obj, value = obj[keep], value[keep] + 1
    names = _window(a, value, _NAME_WINDOW)
    plain_name = _plain(names, names == _QUOTE)
    known[obj[~plain_name]] = False
    packed_names = _packed(names)
    for name in _FAST_SKIP_NAMES:
        skip[obj[plain_name & _starts_with(names, packed_names, name)]] = True
    return skip, known
