"""LLM-style greedy decoding with a KV cache: GPT-2 config, random weights, batch 1.

Known bottleneck: one small forward per token (launch / dispatch overhead, memory-bandwidth bound
on a GPU; tiny GEMMs on a CPU). Each forward call is one step.
    python examples/gpt2_decode.py --new-tokens 32
    dsprof run examples/gpt2_decode.py --new-tokens 32
"""

import argparse
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompt-len", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    config = GPT2Config(n_layer=args.layers, n_embd=args.hidden, n_head=8)
    model = GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, config.vocab_size, (1, args.prompt_len))
    generated = []
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        past = out.past_key_values
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(args.new_tokens - 1):
            generated.append(int(token))
            out = model(input_ids=token, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = out.logits[:, -1].argmax(-1, keepdim=True)
        generated.append(int(token))
    dt = time.perf_counter() - t0
    print(
        f"gpt2: {len(generated)} tokens in {dt:.2f} s ({len(generated) / dt:.1f} tok/s): {generated[:8]}"
    )


if __name__ == "__main__":
    main()
