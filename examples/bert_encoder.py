"""BERT-base encoder inference on random weights (transformers' BertConfig(), no download).

Known bottleneck on a CPU: fp32 Linear layers (int8 dynamic quantization or bf16 + compile cut it).
On a GPU (`--device cuda`): fp32 GEMMs without tensor cores (fp16/bf16/tf32 recipes).
    python examples/bert_encoder.py --batch 1 --seq 128 --steps 20
    dsprof run examples/bert_encoder.py --batch 1 --steps 20
    dsprof run examples/bert_encoder.py --device cuda --batch 8 --steps 20
"""

import argparse
import time

import torch
from transformers import BertConfig, BertModel


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--layers", type=int, default=12, help="encoder layers (12 = BERT-base)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="where the model runs: cpu, cuda, cuda:1 ...")
    args = p.parse_args()

    torch.manual_seed(args.seed)
    config = BertConfig(num_hidden_layers=args.layers)
    model = BertModel(config).eval().to(args.device)
    input_ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), device=args.device)
    attention_mask = torch.ones_like(input_ids)

    times = []
    with torch.no_grad():
        for _ in range(args.steps):
            t0 = time.perf_counter()
            out = model(input_ids=input_ids, attention_mask=attention_mask)
            times.append(time.perf_counter() - t0)
    times.sort()
    print(
        f"bert: batch {args.batch} seq {args.seq}: median {1000 * times[len(times) // 2]:.1f} ms/step, "
        f"pooled[0,:3]={out.pooler_output[0, :3].tolist()}"
    )


if __name__ == "__main__":
    main()
