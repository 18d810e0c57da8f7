"""Planted: torch.set_num_threads(1) on a multi-core box (expects cpu-threads)."""

import torch

torch.set_num_threads(1)
torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Conv2d(3, 32, 3, padding=1),
    torch.nn.ReLU(),
    torch.nn.Conv2d(32, 32, 3, padding=1),
    torch.nn.ReLU(),
    torch.nn.AdaptiveAvgPool2d(1),
    torch.nn.Flatten(),
    torch.nn.Linear(32, 10),
).eval()
images = torch.randn(8, 3, 64, 64)
with torch.inference_mode():
    for _ in range(10):
        model(images)
