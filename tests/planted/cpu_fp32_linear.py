"""Planted: a big fp32 MLP at batch 64 on the CPU (expects cpu-fp32-linear)."""

import torch

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(1024, 2048),
    torch.nn.GELU(),
    torch.nn.Linear(2048, 2048),
    torch.nn.GELU(),
    torch.nn.Linear(2048, 1024),
).eval()
batch = torch.randn(64, 1024)
with torch.inference_mode():
    for _ in range(10):
        model(batch)
