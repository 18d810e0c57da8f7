"""A tiny inference script whose names carry HTML, for the report and dashboard escaping tests.

The op `</script><b>x` comes from record_function and the module class is named `<b>Evil</b>Net`.
It forgets eval() and no_grad() on purpose, so the analyzers have findings to show.
"""

import torch

Evil = type("<b>Evil</b>Net", (torch.nn.Module,), {})


def _init(self):
    torch.nn.Module.__init__(self)
    self.l1 = torch.nn.Linear(256, 256)
    self.drop = torch.nn.Dropout(0.1)
    self.l2 = torch.nn.Linear(256, 16)


def _forward(self, x):
    with torch.profiler.record_function("</script><b>x"):
        h = self.drop(torch.relu(self.l1(x)))
    return self.l2(h)


Evil.__init__ = _init
Evil.forward = _forward

torch.manual_seed(0)
model = Evil()
x = torch.randn(8, 256)
for _ in range(12):
    model(x)
