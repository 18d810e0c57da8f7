"""Planted: a model with dropout never switched to eval() (expects train-mode-in-inference)."""

import torch

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(256, 512),
    torch.nn.ReLU(),
    torch.nn.Dropout(0.2),
    torch.nn.Linear(512, 512),
    torch.nn.ReLU(),
    torch.nn.Dropout(0.2),
    torch.nn.Linear(512, 10),
)  # model.eval() is missing: dropout stays active
batch = torch.randn(32, 256)
with torch.no_grad():
    for _ in range(12):
        model(batch)
