"""An MLP served under torch.autocast("cpu", dtype=torch.bfloat16), as a script that already
chose bf16 does (--fp32: the same script without autocast, for comparison)."""

import argparse

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=12)
parser.add_argument("--fp32", action="store_true", help="no autocast")
args = parser.parse_args()
torch.set_num_threads(1)

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(512, 2048), torch.nn.GELU(), torch.nn.Linear(2048, 512)
).eval()
x = torch.randn(64, 512)
with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=not args.fp32):
    for _ in range(args.steps):
        out = model(x)
print(tuple(out.shape), out.dtype)
