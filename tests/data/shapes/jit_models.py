"""A TorchScript model, scripted or traced, called in a loop.

    python jit_models.py script|trace [calls]
"""

import sys

import torch

kind = sys.argv[1] if len(sys.argv) > 1 else "script"
calls = int(sys.argv[2]) if len(sys.argv) > 2 else 30


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(32, 64)
        self.fc2 = torch.nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


torch.manual_seed(0)
net = Net().eval()
example = torch.randn(2, 32)
model = torch.jit.script(net) if kind == "script" else torch.jit.trace(net, example)
with torch.no_grad():
    for _ in range(calls):
        y = model(torch.randn(2, 32))
print("calls", calls, tuple(y.shape))
