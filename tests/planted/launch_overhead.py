"""Planted: a forward made of hundreds of tiny elementwise ops (expects launch-overhead)."""

import torch


class TinyOps(torch.nn.Module):
    """Each op touches 32 floats: the per-op dispatch cost is all there is."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(400):
            x = x * 1.0001 + 0.001
        return x


torch.manual_seed(0)
model = TinyOps().eval()
x = torch.randn(4, 8)
with torch.inference_mode():
    for _ in range(12):
        model(x)
