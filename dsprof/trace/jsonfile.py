"""Opening a trace file, and saying where its JSON is wrong (for dsprof.trace.reader).

Positions are byte offsets in the (decompressed) file, turned into a line and column by reading
the file again up to the offset: only on the error path, so the reader keeps no line count.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path
from typing import IO

import msgspec
import orjson

from dsprof.core.errors import TraceError

READ_BYTES = 1 << 20
BOM = b"\xef\xbb\xbf"
JSON_WS = b" \t\r\n"
ANY = msgspec.json.Decoder()
RAW = msgspec.json.Decoder(msgspec.Raw)  # validates without building the values
_MSGSPEC_BYTE = re.compile(r"\s*\(byte (\d+)\)$")
_UNFINISHED = re.compile(rb"[\w+\-.\\\"]*")  # what may end a prefix where a token is cut
ORJSON_POS = re.compile(r":? line \d+ column \d+ \(char \d+\)$")


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


def read_bytes(f: IO[bytes], n: int, path: Path) -> bytes:
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
                data = read_bytes(f, min(remaining, READ_BYTES), path)
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


def error_at(data: bytes) -> tuple[int, str] | None:
    """(byte offset, problem) of the first JSON error in data per msgspec; None if it accepts.

    A first pass validates without building anything: a prefix of one huge event (an op with
    64 MB of Input Dims) is probed as it is read, and building its values each time doubled
    the reader's time. Only an error other than the end coming early is located again by a pass
    that decodes (its positions are the ones the messages have always given).
    """
    try:
        RAW.decode(data)
    except (msgspec.DecodeError, RecursionError) as e:
        p, problem = decode_error(e, data)
        if p == len(data) and problem.startswith("the JSON ends early"):
            return p, problem
    try:
        ANY.decode(data)
    except (msgspec.DecodeError, RecursionError) as e:
        return decode_error(e, data)
    return None


def decode_error(e: Exception, data: bytes) -> tuple[int, str]:
    """(byte offset in data, problem) of msgspec's error e over data; a truncation is placed at
    the end, a bad UTF-8 byte (msgspec gives no position for it) found by decoding."""
    if isinstance(e, RecursionError):
        return 0, "values nested too deeply"
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


def not_json(start: bytes) -> str:
    if start[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(start) > 1 and 0 in start[:4]):
        return "not UTF-8 JSON (UTF-16 or UTF-32 text?): a trace is read as UTF-8"
    return "not a JSON trace: it does not start with '{' or '['"


def decodes_to(raw: bytes, text: str) -> bool:
    try:
        return bool(orjson.loads(raw) == text)
    except orjson.JSONDecodeError:
        return False


def skip_ws(buf: bytes, i: int) -> int:
    """The index of the first non-whitespace byte at or after i (len(buf) if none)."""
    n = len(buf)
    while i < n and buf[i] in JSON_WS:
        i += 1
    return i


def cut_token(data: bytes, p: int) -> bool:
    """True when data from p on could be a token cut by the end of a read (a number, a literal,
    an escape): an error there may only mean the rest comes in the next read."""
    return _UNFINISHED.fullmatch(data, p) is not None
