"""Serve one Python request handler over HTTP, for `dsprof load path/to/file.py:function`.

    python -m dsprof.load.handler_server path/to/file.py:function --port 8123
    python -m dsprof.load.handler_server package.module:function --port 8123

`dsprof load` runs this under `dsprof run`, so the handler runs in-process in a child under
dsprof's collectors. Every POST calls `function(payload)` once: payload is the JSON-decoded body
(bytes when the body is not JSON); when the function takes a `priority` argument it gets the
request's priority header. The result goes back as JSON (tensors as their shape and dtype, small
ones as lists). GET answers 200, which is how readiness is checked. Requests are served one at a
time on one thread, like a single-worker model server; the HTTP server is the standard library's.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dsprof.load.plan import PRIORITY_HEADER

# tensors with at most this many elements are answered as lists; larger ones by shape only
MAX_LISTED_ELEMENTS = 64


def load_handler(spec: str) -> Callable[..., Any]:
    """Import `file.py:function` or `module:function` (SystemExit with a sentence when it fails)."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise SystemExit(f"dsprof: error: {spec!r} is not FILE.py:FUNCTION or MODULE:FUNCTION")
    if where.endswith(".py"):
        path = Path(where).resolve()
        if not path.is_file():
            raise SystemExit(f"dsprof: error: {where}: no such file")
        sys.path.insert(0, str(path.parent))
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise SystemExit(f"dsprof: error: {spec}: {name!r} is not a function of {where}")
    return fn


def to_json(value: Any) -> Any:
    """A handler's result as JSON-able data (tensors and arrays summarised or listed)."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        size = int(getattr(value, "numel", lambda: getattr(value, "size", 0))())
        if size <= MAX_LISTED_ELEMENTS and hasattr(value, "tolist"):
            return value.tolist()
        return {"shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


class _CallThread:
    """One thread makes every handler call, in order: the handler (and so the model) always
    runs on the same thread, as in a single-worker model server, whatever thread received the
    request (the profiler's window starts on the thread that makes the steps)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.jobs: queue.Queue[tuple[Any, dict[str, Any], Future[Any]]] = queue.Queue()
        threading.Thread(target=self._loop, name="dsprof-handler", daemon=True).start()

    def _loop(self) -> None:
        while True:
            payload, kwargs, future = self.jobs.get()
            try:
                future.set_result(self.fn(payload, **kwargs))
            except Exception as e:
                future.set_exception(e)

    def __call__(self, payload: Any, **kwargs: Any) -> Any:
        future: Future[Any] = Future()
        self.jobs.put((payload, kwargs, future))
        return future.result()


def make_server(fn: Callable[..., Any], host: str, port: int) -> ThreadingHTTPServer:
    """A threaded stdlib HTTP server calling fn once per POST, one call at a time."""
    call = _CallThread(fn)
    takes_priority = "priority" in inspect.signature(fn).parameters

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the load generator reuses connections

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request would flood the service's log

        def _answer(self, status: int, doc: Any) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(200, {"ready": True})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            payload: Any
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = raw
            kwargs = {}
            if takes_priority:
                kwargs["priority"] = self.headers.get(PRIORITY_HEADER)
            try:
                result = call(payload, **kwargs)
            except Exception as e:  # the handler's error is the answer, not the server's end
                self._answer(500, {"error": f"{type(e).__name__}: {e}"})
                return
            self._answer(200, {"result": to_json(result)})

    class Server(ThreadingHTTPServer):
        # the default backlog of 5 refuses connections when an open-loop burst opens many
        request_queue_size = 1024
        daemon_threads = True

    return Server((host, port), Handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("handler", help="FILE.py:FUNCTION or MODULE:FUNCTION")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    args = parser.parse_args(argv)
    fn = load_handler(args.handler)
    server = make_server(fn, args.host, args.port)
    print(f"serving {args.handler} on http://{args.host}:{args.port}/", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
