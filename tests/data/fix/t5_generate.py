"""T5 text-to-text generation with generate() (random weights from a small T5Config; no downloads).

Several prompts, one generate() call each: every call runs the encoder once and the decoder once
per new token, so a compiled model sees new shapes when the next call starts.
"""

import argparse

import torch
from transformers import T5Config, T5ForConditionalGeneration

parser = argparse.ArgumentParser()
parser.add_argument("--calls", type=int, default=3, help="generate() calls")
parser.add_argument("--new-tokens", type=int, default=8)
parser.add_argument("--layers", type=int, default=2, help="encoder and decoder layers")
args = parser.parse_args()
torch.set_num_threads(1)

torch.manual_seed(0)
config = T5Config(
    vocab_size=512,
    d_model=64,
    d_kv=16,
    d_ff=128,
    num_layers=args.layers,
    num_decoder_layers=args.layers,
    num_heads=4,
    decoder_start_token_id=0,
    pad_token_id=0,
    eos_token_id=1,
)
model = T5ForConditionalGeneration(config).eval()
g = torch.Generator().manual_seed(1)
for i in range(args.calls):
    prompt = torch.randint(2, config.vocab_size, (1, 12 + 4 * i), generator=g)
    tokens = model.generate(
        prompt,
        max_new_tokens=args.new_tokens,
        min_new_tokens=args.new_tokens,
        do_sample=False,
    )
print("tokens", tokens.tolist())
