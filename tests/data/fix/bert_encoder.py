"""BERT encoder inference on the CPU (random weights from a config; no downloads).

Prints the median step time in ms as its last line, measured by the script itself, so the
original and a patched copy can be timed with plain python.
"""

import argparse
import statistics
import time

import torch
from transformers import BertConfig, BertModel

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=12)
parser.add_argument("--layers", type=int, default=12)
parser.add_argument("--seq", type=int, default=128)
parser.add_argument("--batch", type=int, default=1)
parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: torch's default)")
parser.add_argument("--autograd", action="store_true", help="forget no_grad (autograd stays on)")
args = parser.parse_args()
if args.threads:
    torch.set_num_threads(args.threads)

torch.manual_seed(0)
model = BertModel(BertConfig(num_hidden_layers=args.layers))
model = model.eval()
input_ids = torch.randint(0, 30000, (args.batch, args.seq))
times = []
with torch.set_grad_enabled(args.autograd):
    for _ in range(args.steps):
        t0 = time.perf_counter()
        out = model(input_ids=input_ids)
        times.append((time.perf_counter() - t0) * 1e3)
print(tuple(out.last_hidden_state.shape))
print(f"median_ms {statistics.median(times[2:]):.2f}")
