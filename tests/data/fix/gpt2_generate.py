"""GPT-2 text generation with generate() (random weights from a small GPT2Config; no downloads).

Each step of the model is one decode step of generate(), carrying a KV cache to the next. Prints
the generated token ids of every call (one line each), so runs can be compared with plain python.
"""

import argparse

import torch
from transformers import GPT2Config, GPT2LMHeadModel

parser = argparse.ArgumentParser()
parser.add_argument("--calls", type=int, default=2, help="generate() calls")
parser.add_argument("--new-tokens", type=int, default=24)
parser.add_argument("--layers", type=int, default=2)
parser.add_argument("--hidden", type=int, default=256)
parser.add_argument("--quantize", action="store_true", help="int8 dynamic (to compare by hand)")
args = parser.parse_args()
torch.set_num_threads(1)

torch.manual_seed(0)
config = GPT2Config(
    n_layer=args.layers,
    n_embd=args.hidden,
    n_head=4,
    vocab_size=2000,
    n_positions=128,
    bos_token_id=1,
    eos_token_id=2,
    initializer_range=0.1,  # wider than GPT-2's 0.02: random weights that still vary their text
)
model = GPT2LMHeadModel(config).eval()
if args.quantize:
    torch.ao.quantization.quantize_dynamic(
        model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
    )
prompt = torch.randint(0, config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(1))
for _ in range(args.calls):
    tokens = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=args.new_tokens,
        min_new_tokens=args.new_tokens,
        do_sample=False,
        pad_token_id=0,
    )
    print("tokens", tokens[:, prompt.shape[1] :].tolist())
