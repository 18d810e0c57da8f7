"""The script quantizes its own model (dynamic int8) before serving it.

    python quantize_self.py [calls]
"""

import sys

import torch
from torch.ao.quantization import quantize_dynamic

calls = int(sys.argv[1]) if len(sys.argv) > 1 else 30
torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 16)
).eval()
qmodel = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
with torch.inference_mode():
    for _ in range(calls):
        y = qmodel(torch.randn(4, 128))
print("calls", calls, tuple(y.shape))
