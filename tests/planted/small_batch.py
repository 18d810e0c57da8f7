"""Planted: requests fed one at a time (batch 1) to a wide MLP that batches well (expects small-batch)."""

import torch

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(2048, 2048),
    torch.nn.ReLU(),
    torch.nn.Linear(2048, 2048),
    torch.nn.ReLU(),
    torch.nn.Linear(2048, 256),
).eval()
requests = torch.randn(24, 2048)
with torch.inference_mode():
    for request in requests:
        model(request.unsqueeze(0))
