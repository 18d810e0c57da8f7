"""Planted: results read back with one .item() per element inside the loop (expects host-sync)."""

import torch

torch.manual_seed(0)
model = torch.nn.Embedding(1000, 64).eval()  # a lookup: no GEMM, so the reads dominate
tokens = torch.randint(0, 1000, (16,))
with torch.inference_mode():
    for _ in range(12):
        out = model(tokens)
        scores = [v.item() for v in out.flatten()]  # the planted sync: 1024 scalar reads per step
