"""A FastAPI service for the load tests: each answer takes --work-ms; one request stalls.

    python tests/data/load/stall_app.py --port 8123 --work-ms 2 --stall-at 40 --stall-s 1.0
    python tests/data/load/stall_app.py --port 8123 --fail-every 4     # every 4th answer is a 500
    python tests/data/load/stall_app.py --port 8123 --die-at 30        # exits at request 30
    python tests/data/load/stall_app.py --port 8123 --work-ms 20 --serial  # one answer at a time

The stall blocks the whole event loop (time.sleep in an async handler), as a GC pause, a
compile or a lock would: every request that arrives meanwhile waits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=8123)
parser.add_argument("--work-ms", type=float, default=2.0)
parser.add_argument("--stall-at", type=int, default=0, help="the Nth request stalls (0: none)")
parser.add_argument("--stall-s", type=float, default=1.0)
parser.add_argument("--fail-every", type=int, default=0)
parser.add_argument("--die-at", type=int, default=0)
parser.add_argument(
    "--serial", action="store_true", help="answers take turns (one model, one request at a time)"
)
args, _ = parser.parse_known_args()

app = FastAPI()
count = {"n": 0}
turn = asyncio.Lock()


@app.get("/work")
async def ready() -> dict[str, bool]:
    return {"ready": True}


@app.post("/work")
async def work(request: Request) -> JSONResponse:
    count["n"] += 1
    n = count["n"]
    await request.body()
    if args.die_at and n >= args.die_at:
        os._exit(3)
    if n == args.stall_at:
        time.sleep(args.stall_s)  # blocks the loop: the stall every waiting request shares
    if args.serial:
        async with turn:
            await asyncio.sleep(args.work_ms / 1000)
    else:
        await asyncio.sleep(args.work_ms / 1000)
    if args.fail_every and n % args.fail_every == 0:
        return JSONResponse({"error": "planted failure"}, status_code=500)
    return JSONResponse({"n": n, "priority": request.headers.get("x-priority")})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
