"""Control: a batched conv net in inference mode, eval mode, default threads (expects nothing at
medium or high: every class above is absent here)."""

import torch

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Conv2d(3, 16, 3, padding=1),
    torch.nn.ReLU(),
    torch.nn.Conv2d(16, 16, 3, padding=1),
    torch.nn.AdaptiveAvgPool2d(1),
    torch.nn.Flatten(),
    torch.nn.Linear(16, 10),
).eval()
x = torch.randn(32, 3, 64, 64)
with torch.inference_mode():
    for _ in range(20):
        model(x)
