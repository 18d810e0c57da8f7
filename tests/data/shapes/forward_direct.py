"""The script calls model.forward(x) directly instead of model(x).

    python forward_direct.py [calls]
"""

import sys

import torch

calls = int(sys.argv[1]) if len(sys.argv) > 1 else 40


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(64, 128)
        self.b = torch.nn.Linear(128, 128)
        self.c = torch.nn.Linear(128, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


torch.manual_seed(0)
model = Net().eval()
with torch.no_grad():
    for _ in range(calls):
        y = model.forward(torch.randn(4, 64))
print("calls", calls, tuple(y.shape))
