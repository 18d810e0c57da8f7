"""A script that needs autograd through the model's output (a saliency map): inference-mode breaks it.

The real failure a trial must report: under torch.inference_mode() the output does not require
grad, so backward() raises.
"""

import torch

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Dropout(0.1), torch.nn.Linear(64, 8))
x = torch.randn(4, 64, requires_grad=True)
for _ in range(10):
    y = model(x)
    y.sum().backward()  # input saliency
print(tuple(x.grad.shape))
