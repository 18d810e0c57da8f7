"""The events the trace reader keeps, decoded straight into typed records (msgspec Structs).

An event is decoded into `Event`: only the fields the engine reads are built, every other key
(and every other arg) is validated by msgspec and skipped, which is cheaper than building each
event as a dict and reading it back (dsprof.trace.reader, dsprof.trace.columns). The fields
are typed Any: a value of the wrong type is stored as it is and the column builder marks its row
invalid (dsprof.trace.validate drops it and says why), so one bad event never fails a chunk.
The exception is `args`, typed `Args`: an args that is not an object fails the decode of its
chunk, which is then decoded event by event (`decode_events`), the bad one through a dict
(`event_from_dict`) with args = NotAnObject. "Input Dims", "Input type" and "Concrete Inputs"
stay raw JSON (msgspec.Raw): the column builder interns their text, and decodes each distinct
text once.

What msgspec lets pass in the values it skips and orjson refuses (text that is not UTF-8,
numbers beyond a double) is caught by dsprof.trace.scan.suspect() over the same bytes.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

EMPTY_RAW = msgspec.Raw(b"")


class Args(msgspec.Struct, gc=False):
    """The args the column builder reads (dsprof.trace.columns); None when absent."""

    external_id: Any = msgspec.field(default=None, name="External id")
    external_id_2021: Any = msgspec.field(default=None, name="external id")
    seq: Any = msgspec.field(default=None, name="Sequence number")
    correlation: Any = None
    device: Any = None
    stream: Any = None
    bytes: Any = None  # memcpy / memset
    grid: Any = None
    block: Any = None
    registers: Any = msgspec.field(default=None, name="registers per thread")
    shared_memory: Any = msgspec.field(default=None, name="shared memory")
    blocks_per_sm: Any = msgspec.field(default=None, name="blocks per SM")
    warps_per_sm: Any = msgspec.field(default=None, name="warps per SM")
    occupancy_pct: Any = msgspec.field(default=None, name="est. achieved occupancy %")
    input_dims: msgspec.Raw = msgspec.field(default=EMPTY_RAW, name="Input Dims")
    input_types: msgspec.Raw = msgspec.field(default=EMPTY_RAW, name="Input type")
    concrete_inputs: msgspec.Raw = msgspec.field(default=EMPTY_RAW, name="Concrete Inputs")
    memory_bytes: Any = msgspec.field(default=None, name="Bytes")  # [memory] instants
    total_allocated: Any = msgspec.field(default=None, name="Total Allocated")
    total_reserved: Any = msgspec.field(default=None, name="Total Reserved")
    device_id: Any = msgspec.field(default=None, name="Device Id")
    device_type: Any = msgspec.field(default=None, name="Device Type")


class NotAnObject(Args, gc=False):
    """Stands for an args that is not a JSON object (a list, a number, a string): row invalid."""


class OversizedArgs(Args, gc=False):
    """Stands for the args of an event whose args alone exceed HUGE_EVENT_BYTES (not decoded)."""

    nbytes: int = 0


class EventKeys(msgspec.Struct, gc=False):
    """The keys of an event the engine reads (None when absent; dur: UNSET when absent, which
    instants without a duration need to tell from null)."""

    ph: Any = None
    cat: Any = None
    name: Any = None
    ts: Any = None
    dur: Any = msgspec.UNSET
    pid: Any = None
    tid: Any = None


class Event(EventKeys, gc=False):
    """One kept trace event: its keys and the args the engine reads."""

    args: Args | None = None


EVENTS = msgspec.json.Decoder(list[Event])
EVENT = msgspec.json.Decoder(Event)
ARGS = msgspec.json.Decoder(Args | None)


def decode_events(pieces: list[bytes]) -> list[Event]:
    """Each piece (one JSON object) as an Event, one whose args is not an object included.
    Raises msgspec.DecodeError, orjson.JSONDecodeError, or ValueError for a piece that is
    not an object."""
    out = []
    for piece in pieces:
        try:
            out.append(EVENT.decode(piece))
        except msgspec.ValidationError:  # args is not an object (or the piece is none)
            d = orjson.loads(piece)
            if type(d) is not dict:
                raise ValueError("not a JSON object") from None
            out.append(event_from_dict(d))
    return out


def args_value(args: Any) -> Args | None:
    """A decoded args value as the Event field: None when empty or null (as absent), Args for
    an object, NotAnObject for anything else."""
    if not args:
        return None
    if type(args) is not dict:
        return NotAnObject()
    decoded: Args | None = ARGS.decode(orjson.dumps(args))
    return decoded


def event_from_dict(d: dict[str, Any]) -> Event:
    """An Event from a decoded event dict (a piece whose args is not an object)."""
    return Event(
        ph=d.get("ph"),
        cat=d.get("cat"),
        name=d.get("name"),
        ts=d.get("ts"),
        dur=d.get("dur", msgspec.UNSET),
        pid=d.get("pid"),
        tid=d.get("tid"),
        args=args_value(d.get("args")),
    )
