"""A DataLoader-fed loop whose dataset is slow (simulated decoding); loads in the main process."""

import time

import torch
from torch.utils.data import DataLoader, Dataset


class SlowDataset(Dataset):
    def __len__(self):
        return 96

    def __getitem__(self, i):
        time.sleep(0.004)  # reading and decoding one sample
        g = torch.Generator().manual_seed(i)
        return torch.randn(32, generator=g)


torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4)).eval()
loader = DataLoader(SlowDataset(), batch_size=8)
with torch.no_grad():
    for batch in loader:
        out = model(batch)
print(tuple(out.shape))
