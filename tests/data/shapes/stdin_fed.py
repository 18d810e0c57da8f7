"""Reads one request per stdin line (numbers), runs the model on each.

    cat inputs.txt | python stdin_fed.py
"""

import sys

import torch

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4)).eval()
n = 0
with torch.no_grad():
    for line in sys.stdin:
        values = [float(v) for v in line.split()]
        if not values:
            continue
        x = torch.tensor(values).reshape(1, 16)
        y = model(x)
        n += 1
print("requests", n)
