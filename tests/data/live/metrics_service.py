"""A service that reports its requests the vLLM way, on its own /metrics (prometheus-client):
no dsprof inside. It "serves" a request every 10 ms and exits after --exit-after seconds, or once
--exit-file exists."""

import argparse
import os
import random
import time

from prometheus_client import Histogram, start_http_server

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--exit-after", type=float, default=60.0)
parser.add_argument("--exit-file")
args = parser.parse_args()

latency = Histogram(
    "vllm:e2e_request_latency_seconds", "e2e", ["model_name"], buckets=(0.01, 0.05, 0.1, 0.5)
)
start_http_server(args.port, addr="127.0.0.1")
print("ready", flush=True)
deadline = time.monotonic() + args.exit_after
while time.monotonic() < deadline:
    if args.exit_file and os.path.exists(args.exit_file):
        break
    latency.labels("toy").observe(random.uniform(0.02, 0.04))
    time.sleep(0.01)
