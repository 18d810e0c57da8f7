"""Planted: .item() inside the inference loop, once per layer (expects host-sync)."""

import torch


class Checked(torch.nn.Module):
    """Reads a scalar back after every layer: the host waits on each value."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(64, 64) for _ in range(16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))
            if x.abs().max().item() > 1e6:  # the planted sync
                break
        return x


torch.manual_seed(0)
model = Checked().eval()
x = torch.randn(16, 64)
with torch.inference_mode():
    for _ in range(12):
        model(x)
