"""Planted: inference without torch.no_grad / inference_mode (expects autograd-in-inference)."""

import torch

torch.manual_seed(0)
model = torch.nn.Sequential(
    *[
        torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.LayerNorm(256), torch.nn.GELU())
        for _ in range(8)
    ]
).eval()
batch = torch.randn(32, 256)
for _ in range(12):
    model(batch)  # no torch.no_grad(): autograd records a graph at every call
