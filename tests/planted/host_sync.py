"""Planted: results read back with one .item() per element inside the loop (expects host-sync)."""

import torch

torch.manual_seed(0)
model = torch.nn.Linear(64, 128).eval()
x = torch.randn(16, 64)
with torch.inference_mode():
    for _ in range(12):
        out = model(x)
        scores = [v.item() for v in out.flatten()]  # the planted sync: 2048 scalar reads per step
