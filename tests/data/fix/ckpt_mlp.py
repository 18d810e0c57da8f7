"""An MLP served from a checkpoint: built, weights loaded with load_state_dict, then eval().

The checkpoint (with a parameter of its own, `body.0.scale`, that a quantized layer would not
have) is written next to the script on the first run. --save writes the last output, so a
patched copy can be compared with the original. --signed: when the script's text no longer
matches the digest recorded beside it, the script refuses to run (as a deployed, signed script
does), or with CKPT_MLP_UNSIGNED=slow does the fp32 work of about three calls with plain tensors
before each call (slower by a factor, whatever the machine's load), or with
CKPT_MLP_UNSIGNED=drift serves other inputs: a patched copy that fails, is slower or gives other
outputs, for the tests of --apply's re-verification.
"""

import argparse
import hashlib
import os
import pathlib
import statistics
import sys
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=16)
parser.add_argument("--save", default="")
parser.add_argument("--signed", action="store_true")
args = parser.parse_args()
here = pathlib.Path(__file__).resolve()
changed = False
if args.signed:
    digest = hashlib.sha256(here.read_bytes()).hexdigest()
    changed = here.with_suffix(".sha256").read_text().strip() != digest
unsigned = os.environ.get("CKPT_MLP_UNSIGNED", "exit") if changed else ""
if unsigned == "exit":
    sys.exit("refusing to run: the script changed since it was signed")
torch.set_num_threads(1)


class Block(torch.nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.up = torch.nn.Linear(width, 4 * width)
        self.down = torch.nn.Linear(4 * width, width)
        self.scale = torch.nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.down(torch.relu(self.up(x)))


class Net(torch.nn.Module):
    def __init__(self, width: int = 512, depth: int = 3) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(*[Block(width) for _ in range(depth)])
        self.head = torch.nn.Linear(width, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


CKPT = here.with_name("ckpt_mlp.pt")
if not CKPT.exists():
    torch.manual_seed(0)
    torch.save(Net().state_dict(), CKPT)

model = Net()
model.load_state_dict(torch.load(CKPT))
model.eval()
x = torch.randn(64, 512, generator=torch.Generator().manual_seed(2 if unsigned == "drift" else 1))
w_up, w_down = torch.randn(512, 2048), torch.randn(2048, 512)
times = []
with torch.inference_mode():
    for _ in range(args.steps):
        t0 = time.perf_counter()
        if unsigned == "slow":
            for _ in range(10):
                busy = torch.relu(x @ w_up) @ w_down
        out = model(x)
        times.append((time.perf_counter() - t0) * 1e3)
if args.save:
    torch.save(out, args.save)
print(f"median_ms {statistics.median(times[2:]):.2f}")
