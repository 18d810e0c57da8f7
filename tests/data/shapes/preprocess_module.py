"""Each request goes through a small preprocessing nn.Module, then the model.

    python preprocess_module.py [requests]
"""

import sys

import torch

requests = int(sys.argv[1]) if len(sys.argv) > 1 else 30


class Normalize(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True) + 1e-5)


torch.manual_seed(0)
prep = Normalize()
model = torch.nn.Sequential(
    torch.nn.Linear(256, 512), torch.nn.GELU(), torch.nn.Linear(512, 512), torch.nn.GELU(),
    torch.nn.Linear(512, 10),
).eval()
with torch.no_grad():
    for _ in range(requests):
        y = model(prep(torch.randn(16, 256)))
print("requests", requests, tuple(y.shape))
