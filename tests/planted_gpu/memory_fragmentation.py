"""Planted GPU bottleneck: memory-fragmentation in the CUDA caching allocator.

A request cache (think of the key/value cache of in-flight requests) whose entries keep growing:
each step evicts a random half of the live entries and admits as many new ones, longer than any
before (12 MB growing to 40 MB by the last step, with jitter). Requests of 10 MB and more get a
cudaMalloc segment of their own size; a freed segment is kept by the caching allocator but is
too small for every later request, and separate segments never merge, so reserved memory climbs
to several times the allocated memory (about 4 GB reserved for 0.6 GB of live entries over 30
steps, in a model of the allocator's rules). PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True,
dsprof's alloc-conf recipe, is the documented remedy: one segment that grows and whose freed
blocks merge (about 0.8 GB reserved in the same model).

On the CPU the same steps run (malloc has no such cache): nothing is planted there.

    python tests/planted_gpu/memory_fragmentation.py --device cuda
    dsprof run tests/planted_gpu/memory_fragmentation.py --device cuda
    dsprof fix --recipe alloc-conf tests/planted_gpu/memory_fragmentation.py --device cuda

Its last line gives the allocator's peak reserved and allocated bytes (CUDA), so a plain run shows
the waste too.
"""

import argparse
import random

import torch
from torch import nn

MB = 1 << 20


class RequestCache(nn.Module):
    """Live cache entries; one call evicts a random half and admits new entries of given sizes."""

    def __init__(self, device: str, seed: int) -> None:
        super().__init__()
        self.device = torch.device(device)
        self.entries: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def forward(self, lengths: torch.Tensor) -> torch.Tensor:
        evicted = self.rng.sample(range(len(self.entries)), len(self.entries) // 2)
        for i in sorted(evicted, reverse=True):
            del self.entries[i]
        new = [
            torch.full((n,), float(n % 997), device=self.device, dtype=torch.float32)
            for n in lengths.tolist()
        ]
        self.entries.extend(new)
        return torch.stack([t[:4] for t in new])


def step_lengths(step: int, args: argparse.Namespace, rng: random.Random) -> torch.Tensor:
    """Element counts (float32) of the entries admitted at `step`: sizes grow over the run."""
    frac = step / max(1, args.steps - 1)
    base_mb = args.min_mb + (args.max_mb - args.min_mb) * frac
    n_new = args.live if step == 0 else args.live // 2
    sizes = [(base_mb + args.jitter_mb * rng.random()) * args.scale * MB for _ in range(n_new)]
    return torch.tensor([max(4, int(s) // 4) for s in sizes], dtype=torch.int64)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--live", type=int, default=16, help="live cache entries after each step")
    p.add_argument("--min-mb", type=float, default=12.0, help="entry size at the first step")
    p.add_argument("--max-mb", type=float, default=38.0, help="entry size at the last step")
    p.add_argument("--jitter-mb", type=float, default=2.0)
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every size (CPU runs)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    cache = RequestCache(args.device, args.seed).eval()
    with torch.no_grad():
        for step in range(args.steps):
            out = cache(step_lengths(step, args, rng))
    live = sum(t.numel() * t.element_size() for t in cache.entries)
    line = f"fragmentation: {args.steps} steps, {len(cache.entries)} live entries, {live / MB:.0f} MB live"
    if cache.device.type == "cuda":
        stats = torch.cuda.memory_stats(cache.device)
        line += (
            f", peak reserved {stats['reserved_bytes.all.peak'] / MB:.0f} MB"
            f", peak allocated {stats['allocated_bytes.all.peak'] / MB:.0f} MB"
            f", alloc retries {stats['num_alloc_retries']}"
        )
    print(f"{line}, last output {tuple(out.shape)}")


if __name__ == "__main__":
    main()
