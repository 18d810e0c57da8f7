"""A CNN fed by a DataLoader that reads and decodes files in the main process (num_workers=0).

Known bottleneck: data loading (io-stall): each image is read (with a network-storage read
latency, 1 ms by default) and decoded in the main process while the model waits. The
`dataloader` recipe (worker processes, prefetching) overlaps the reads and the decoding.
    python examples/cnn_dataloader.py --batches 20
    dsprof run examples/cnn_dataloader.py --batches 20
"""

import argparse
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

BLUR_PASSES = 4


class CompressedImages(Dataset):
    """Images stored as zlib-compressed uint8 files; decoding costs CPU time per item."""

    def __init__(self, root: Path, size: int, read_latency_s: float = 0.0) -> None:
        self.files = sorted(root.glob("*.z"))
        self.size = size
        self.read_latency_s = read_latency_s

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.read_latency_s:
            time.sleep(self.read_latency_s)  # the round trip of a read from network storage
        raw = zlib.decompress(self.files[i].read_bytes())
        img = np.frombuffer(raw, dtype=np.uint8).reshape(3, self.size, self.size)
        # the kind of per-item preprocessing pipelines do in Python: smoothing passes (a 3x3 box
        # blur, as in augmentation) and per-channel normalisation, a few ms of CPU per image
        x = img.astype(np.float32) / 255.0
        n = self.size
        for _ in range(BLUR_PASSES):
            p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
            x = sum(p[:, dy : dy + n, dx : dx + n] for dy in range(3) for dx in range(3)) / 9.0
        x = (x - x.mean(axis=(1, 2), keepdims=True)) / (x.std(axis=(1, 2), keepdims=True) + 1e-6)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), i % 10


def write_images(root: Path, n: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = rng.integers(0, 256, size=(3, size, size), dtype=np.uint8)
        (root / f"{i:05d}.z").write_bytes(zlib.compress(img.tobytes(), level=6))


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    ).eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument(
        "--read-latency-ms",
        type=float,
        default=1.0,
        help="per-file read latency, as from network storage (0 for a local disk)",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    model = make_model()
    with tempfile.TemporaryDirectory(prefix="dsprof-cnn-") as tmp:
        root = Path(tmp)
        write_images(root, args.batches * args.batch_size, args.size, args.seed)
        loader = DataLoader(
            CompressedImages(root, args.size, args.read_latency_ms / 1000.0),
            batch_size=args.batch_size,
            num_workers=args.workers,
        )
        correct = total = 0
        with torch.no_grad():
            for images, labels in loader:
                logits = model(images)
                correct += int((logits.argmax(1) == labels).sum())
                total += len(labels)
    print(f"cnn: {total} images, accuracy on random data {correct / max(total, 1):.2f}")


if __name__ == "__main__":
    main()
