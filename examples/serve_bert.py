"""A BERT embedding service: FastAPI + uvicorn, requests batched by dsprof's DynamicBatcher.

    pip install -e ".[examples,serve]"
    python examples/serve_bert.py --port 8000                      # BERT-base, random weights
    curl -s -XPOST localhost:8000/embed -H 'X-Priority: real-time' -d '{"text": "hello"}'
    dsprof load http://127.0.0.1:8000/embed --server "python examples/serve_bert.py" --slo seeds
    python examples/serve_bert.py --on-demand &      # then: dsprof watch $! / dsprof trace $!

POST /embed {"text": "..."} answers the mean-pooled embedding. The priority class comes from the
X-Priority header (real-time, batch, background; default batch). Every answer carries a
Server-Timing header (queue: waiting for a batch, compute: the batched model call) that
`dsprof load` records per request. No download: the model is built from BertConfig with random
weights and the text is tokenised by hashing words into the vocabulary, so the compute is
BERT-base's while the embeddings mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import zlib

import torch
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from transformers import BertConfig, BertModel

from dsprof.serving import PRIORITY_CLASSES, DynamicBatcher

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8000)
parser.add_argument("--layers", type=int, default=12, help="12: BERT-base")
parser.add_argument(
    "--hidden", type=int, default=768, help="768: BERT-base; smaller for a fast, small model"
)
parser.add_argument("--seq", type=int, default=32, help="tokens per request (padded/truncated)")
parser.add_argument("--max-batch", type=int, default=8)
parser.add_argument("--max-wait-ms", type=float, default=10.0)
parser.add_argument("--policy", choices=["priority", "fifo"], default="priority")
parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
parser.add_argument("--on-demand", action="store_true", help="accept `dsprof trace PID` (opt-in)")
parser.add_argument(
    "--gc-freeze",
    action="store_true",
    help="gc.freeze() before serving: the start-up objects leave the collector's full passes",
)
args, _ = parser.parse_known_args()

if args.threads:
    torch.set_num_threads(args.threads)
torch.manual_seed(0)
# BERT's shape at any width: 64 dimensions a head, the feed-forward 4x the hidden size
config = BertConfig(
    num_hidden_layers=args.layers,
    hidden_size=args.hidden,
    num_attention_heads=max(1, args.hidden // 64),
    intermediate_size=4 * args.hidden,
)
model = BertModel(config).eval()


def tokenize(text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Words hashed into the vocabulary, [CLS] ... [SEP], padded to --seq: (ids, mask), 1 x seq."""
    words = text.split()[: args.seq - 2]
    ids = (
        [101] + [1000 + zlib.crc32(w.encode()) % (config.vocab_size - 1000) for w in words] + [102]
    )
    mask = [1] * len(ids) + [0] * (args.seq - len(ids))
    ids += [0] * (args.seq - len(ids))
    return torch.tensor([ids]), torch.tensor([mask])


def embed(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """One batched model call (on the batcher's thread): mean-pooled last hidden state."""
    with torch.inference_mode():
        hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1)


batcher = DynamicBatcher(
    embed, max_batch_size=args.max_batch, max_wait_ms=args.max_wait_ms, policy=args.policy
)
app = FastAPI()


@app.get("/embed")
async def ready() -> dict[str, object]:
    """Readiness (and what is served): dsprof load waits for this to answer."""
    return {"ready": True, "layers": args.layers, "seq": args.seq, "policy": args.policy}


@app.post("/embed")
async def serve(request: Request) -> dict[str, object]:
    body = await request.json()
    priority = request.headers.get("x-priority") or "batch"
    if priority not in PRIORITY_CLASSES:
        raise HTTPException(400, f"X-Priority is one of {', '.join(PRIORITY_CLASSES)}")
    ids, mask = tokenize(str(body.get("text", "")))
    future = batcher.submit(ids, mask, priority=priority)
    vector = await asyncio.wrap_future(future)
    request.state.timing = future
    return {"dim": int(vector.shape[-1]), "embedding": [round(float(v), 5) for v in vector[0, :8]]}


@app.middleware("http")
async def server_timing(request: Request, call_next):  # type: ignore[no-untyped-def]
    response = await call_next(request)
    future = getattr(request.state, "timing", None)
    if future is not None and future.queue_wait_ns is not None and future.compute_ns is not None:
        response.headers["Server-Timing"] = (
            f"queue;dur={future.queue_wait_ns / 1e6:.3f}, compute;dur={future.compute_ns / 1e6:.3f}"
        )
        response.headers["X-Batch-Rows"] = str(future.batch_rows)
    return response


if __name__ == "__main__":
    if args.on_demand:
        import dsprof

        dsprof.serve_on_demand()  # the one line: dsprof trace PID can now take a window
    if args.gc_freeze:
        # torch, transformers and the model leave ~400k objects that every full collection
        # walks: 0.4-0.7 s with the whole service stalled, every few thousand requests
        # (bench/live_overhead.py); frozen, full collections walk only what serving made
        import gc

        gc.collect()
        gc.freeze()
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        batcher.close()
