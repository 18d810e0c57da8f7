"""Writes a lot to stdout and stderr: text with multi-byte characters across read boundaries,
bytes that are not UTF-8, lines without a newline, and a partial last line.

    python big_output.py [megabytes]
"""

import sys

import torch

mb = float(sys.argv[1]) if len(sys.argv) > 1 else 4
model = torch.nn.Linear(4, 4).eval()
line = "é€ profiling 🙂 " * 4 + "\n"
n = int(mb * 1e6 / len(line.encode()))
with torch.no_grad():
    for i in range(n):
        sys.stdout.write(line)
        if i % 2000 == 0:
            model(torch.ones(1, 4))
            sys.stderr.write(f"[W{i}] not torch's: the script's own bracketed line\n")
            sys.stdout.write("x" * 65535)  # the next character straddles a 64 KiB read
sys.stdout.flush()
sys.stdout.buffer.write(b"latin-1 \xe9\xff bytes\n")
sys.stdout.buffer.flush()
sys.stderr.write("progress 50%\rprogress 100%")
sys.stdout.write("no newline at the end")
