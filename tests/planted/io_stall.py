"""Planted: a DataLoader that reads and parses files in the main process, num_workers=0 (expects io-stall)."""

import json
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset


class JsonFiles(Dataset):
    """Each item is a JSON text file of 64 x 256 floats, parsed on access in the main process."""

    def __init__(self, root: Path, n: int) -> None:
        self.paths = []
        g = torch.Generator().manual_seed(0)
        for i in range(n):
            p = root / f"{i}.json"
            p.write_text(json.dumps(torch.randn(64, 256, generator=g).tolist()))
            self.paths.append(p)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = torch.tensor(json.loads(self.paths[i].read_text()))
        return ((x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-6)).mean(0)


torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(256, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)
).eval()
with tempfile.TemporaryDirectory() as tmp:
    loader = DataLoader(JsonFiles(Path(tmp), 64), batch_size=8, num_workers=0)
    with torch.inference_mode():
        for batch in loader:
            model(batch)
sys.exit(0)
