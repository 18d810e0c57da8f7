"""What each request carries: a body (fixed, or one line of a JSONL file) and a priority class.

A requests file has one JSON object a line. When the object has a "body" key, that is the body
(an object or array is sent as JSON, a string as it is) and "priority", "method" and "headers"
may sit beside it; otherwise the whole object is the JSON body, less its "priority" key. Requests
are sent in the file's order, cycling when the load needs more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dsprof.core.errors import UsageError

# the header that carries a request's priority class to the service
PRIORITY_HEADER = "X-Priority"
METHODS = ("GET", "POST", "PUT")


@dataclass(frozen=True)
class RequestTemplate:
    """One request's method, body, headers and (optional) priority class."""

    body: bytes = b""
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    priority: str | None = None


def read_body_file(path: Path) -> RequestTemplate:
    """--body FILE: the same body for every request (JSON content type when it parses as JSON)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read the body file: {e.strerror or e}", path=path) from None
    try:
        json.loads(data)
        headers = {"Content-Type": "application/json"}
    except ValueError:
        headers = {"Content-Type": "application/octet-stream"}
    return RequestTemplate(body=data, headers=headers)


def read_requests_file(path: Path) -> list[RequestTemplate]:
    """--requests FILE.jsonl: one request a line (see the module docstring); bad lines are named."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read the requests file: {e}", path=path) from None
    out: list[RequestTemplate] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise UsageError(f"line {number} is not valid JSON ({e})", path=path) from None
        if not isinstance(obj, dict):
            raise UsageError(f"line {number}: a request is a JSON object", path=path)
        out.append(_template(obj, path, number))
    if not out:
        raise UsageError("the requests file holds no request", path=path)
    return out


def _template(obj: dict[str, object], path: Path, number: int) -> RequestTemplate:
    obj = dict(obj)
    priority = obj.pop("priority", None)
    if priority is not None and not isinstance(priority, str):
        raise UsageError(f"line {number}: priority is a class name string", path=path)
    if "body" not in obj:
        return RequestTemplate(
            body=json.dumps(obj).encode(),
            headers={"Content-Type": "application/json"},
            priority=priority,
        )
    body = obj["body"]
    method = str(obj.get("method", "POST")).upper()
    if method not in METHODS:
        raise UsageError(f"line {number}: method {method!r} is not one of {METHODS}", path=path)
    headers = obj.get("headers", {})
    if not isinstance(headers, dict):
        raise UsageError(f"line {number}: headers is a JSON object", path=path)
    if isinstance(body, str):
        raw, ctype = body.encode(), "text/plain"
    else:
        raw, ctype = json.dumps(body).encode(), "application/json"
    return RequestTemplate(
        body=raw,
        method=method,
        headers={"Content-Type": ctype, **{str(k): str(v) for k, v in headers.items()}},
        priority=priority,
    )


def parse_mix(value: str) -> dict[str, float]:
    """--mix real-time=0.2,batch=0.6,background=0.2 -> shares that sum to 1."""
    mix: dict[str, float] = {}
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        name, sep, share = part.partition("=")
        try:
            weight = float(share)
        except ValueError:
            weight = -1.0
        if not sep or not name.strip() or weight < 0:
            raise UsageError(
                f"--mix wants CLASS=SHARE,... like real-time=0.2,batch=0.8, not {value!r}"
            )
        mix[name.strip()] = weight
    total = sum(mix.values())
    if total <= 0:
        raise UsageError(f"--mix shares must add up to more than 0: {value!r}")
    return {k: v / total for k, v in mix.items()}


def assign_priorities(
    n: int, templates: list[RequestTemplate], mix: dict[str, float] | None, seed: int
) -> list[str | None]:
    """Each request's class: the file's own priority when it has one, else drawn from the mix."""
    rng = np.random.default_rng(seed + 1)
    drawn: list[str | None]
    if mix:
        names = list(mix)
        picks = rng.choice(len(names), size=n, p=[mix[c] for c in names])
        drawn = [names[i] for i in picks]
    else:
        drawn = [None] * n
    return [templates[i % len(templates)].priority or drawn[i] for i in range(n)]
