"""nn.MultiheadAttention called 30 times: a small model whose calls cost well under a
millisecond, where compiling costs seconds that these few calls never pay back."""

import argparse

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--calls", type=int, default=30)
args = parser.parse_args()
torch.set_num_threads(1)

torch.manual_seed(0)
attention = torch.nn.MultiheadAttention(64, 4, batch_first=True).eval()
x = torch.randn(2, 16, 64)
with torch.no_grad():
    for _ in range(args.calls):
        out, weights = attention(x, x, x)
print(tuple(out.shape))
