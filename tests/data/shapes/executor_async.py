"""asyncio.gather over loop.run_in_executor(None, model, x): an async server calling a sync model.

    python executor_async.py [calls]
"""

import asyncio
import sys

import torch

calls = int(sys.argv[1]) if len(sys.argv) > 1 else 50
torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
).eval()


async def main() -> int:
    loop = asyncio.get_running_loop()
    xs = [torch.randn(4, 64) for _ in range(calls)]
    outs = await asyncio.gather(*(loop.run_in_executor(None, model, x) for x in xs))
    return len(outs)


print("calls", asyncio.run(main()))
