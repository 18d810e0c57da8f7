"""Ends the way argv[1] says, after a few model calls and some output on both streams.

python exits.py code N | raise | sigint | signal NAME | exit-message
"""

import os
import signal
import sys

import torch

model = torch.nn.Linear(8, 8).eval()
with torch.no_grad():
    for _ in range(4):
        y = model(torch.ones(2, 8))
print("calls 4", tuple(y.shape), flush=True)
print("a warning of the script's own", file=sys.stderr, flush=True)
how = sys.argv[1]
if how == "code":
    sys.exit(int(sys.argv[2]))
if how == "exit-message":
    sys.exit("fatal: no config file")
if how == "raise":
    raise ValueError("boom")
if how == "sigint":  # an uncaught KeyboardInterrupt: python prints it and ends by SIGINT
    os.kill(os.getpid(), signal.SIGINT)
    signal.pause()
if how == "os-exit":  # what is still in stdout's buffer is lost, as python loses it
    print("unflushed")
    os._exit(7)
if how == "signal":
    os.kill(os.getpid(), getattr(signal, sys.argv[2]))
print("not reached")
