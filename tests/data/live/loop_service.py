"""A small service for the live tests: a worker thread calls an MLP in a loop, like a model
server's batch thread, and reports each call as a request. It opts in to on-demand traces unless
--no-agent. It always ends on its own (--exit-after, or when --exit-file appears: a normal exit,
atexit handlers run). While --pause-file exists its workers call nothing (a service with no
requests), so a test can hold a capture open as long as it needs, however slow the machine."""

import argparse
import os
import threading
import time

import torch

import dsprof
from dsprof.live import record_request

parser = argparse.ArgumentParser()
parser.add_argument("--exit-after", type=float, default=120.0, help="seconds, then exit normally")
parser.add_argument("--no-agent", action="store_true")
parser.add_argument("--interval-ms", type=float, default=5.0, help="pause between calls")
parser.add_argument("--hidden", type=int, default=256)
parser.add_argument("--threads", type=int, default=1, help="worker threads calling the model")
parser.add_argument("--pause-file", help="no model calls while this file exists")
parser.add_argument("--exit-file", help="exit normally once this file exists")
args = parser.parse_args()

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(args.hidden, args.hidden), torch.nn.ReLU(), torch.nn.Linear(args.hidden, 8)
).eval()
if not args.no_agent:
    print("agent", dsprof.serve_on_demand(), flush=True)
stop = threading.Event()


def work() -> None:
    x = torch.randn(4, args.hidden)
    while not stop.is_set():
        if args.pause_file and os.path.exists(args.pause_file):
            time.sleep(0.01)
            continue
        t0 = time.perf_counter()
        with torch.inference_mode():
            model(x)
        record_request(time.perf_counter() - t0)
        time.sleep(args.interval_ms / 1000)


workers = [threading.Thread(target=work, name=f"model-worker-{i}") for i in range(args.threads)]
for w in workers:
    w.start()
print("ready", flush=True)
deadline = time.monotonic() + args.exit_after
while time.monotonic() < deadline:
    if args.exit_file and os.path.exists(args.exit_file):
        break
    time.sleep(0.05)
stop.set()
for w in workers:
    w.join()
print("bye", flush=True)
