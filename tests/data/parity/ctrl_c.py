"""Runs until Ctrl-C. With `catch`, cleans up and exits 0 like a server shutting down.

python ctrl_c.py [catch]
"""

import sys
import time

import torch

model = torch.nn.Linear(16, 16).eval()
print("ready", flush=True)
try:
    while True:
        with torch.no_grad():
            model(torch.randn(2, 16))
        time.sleep(0.005)
except KeyboardInterrupt:
    if sys.argv[1:] == ["catch"]:
        print("cleaned up")
        sys.exit(0)
    raise
