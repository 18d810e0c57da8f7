"""What the child captures from real return types (issue 17): mappings that are not dicts
(transformers' BatchEncoding), ModelOutput, namedtuples, dataclasses, lists of numbers; the
types named when nothing can be captured; the names the script reaches its model by; the
token ids generate() returns."""

from __future__ import annotations

import collections
import dataclasses
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from dsprof.runner.capture import OutputCapture, flatten_tensors, type_names
from dsprof.runner.model_facts import autocast_state, handles
from dsprof.store.layout import RunPaths


def test_a_batch_encoding_is_a_mapping_not_a_dict():
    from transformers import BatchEncoding

    features = BatchEncoding({"input_ids": torch.ones(2, 3), "sentence_embedding": torch.ones(2)})
    assert not isinstance(features, dict)
    assert set(flatten_tensors(features)) == {"input_ids", "sentence_embedding"}


def test_model_outputs_namedtuples_dataclasses_and_numpy():
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    out = BaseModelOutputWithPooling(last_hidden_state=torch.ones(1, 2, 3), pooler_output=None)
    assert list(flatten_tensors(out)) == ["last_hidden_state"]
    Pair = collections.namedtuple("Pair", "scores ids")
    assert set(flatten_tensors(Pair(torch.ones(2), torch.zeros(2)))) == {"scores", "ids"}

    @dataclasses.dataclass
    class Result:
        embedding: torch.Tensor

    assert list(flatten_tensors(Result(torch.ones(3)))) == ["embedding"]
    assert flatten_tensors(np.ones((2, 2)))["0"].shape == (2, 2)


def test_a_python_list_of_numbers_is_one_tensor_and_a_ragged_one_its_rows():
    got = flatten_tensors([[0.5, 1.5], [2.5, 3.5]])
    assert list(got) == ["0"] and torch.equal(got["0"], torch.tensor([[0.5, 1.5], [2.5, 3.5]]))
    ragged = flatten_tensors([[1.0, 2.0], [3.0]])
    assert set(ragged) == {"0", "1"}
    assert list(flatten_tensors([torch.ones(2), torch.zeros(3)])) == ["0", "1"]


def test_outputs_without_tensors_are_indexed_with_their_types(tmp_path):
    paths = RunPaths(tmp_path)
    paths.make_dirs()
    cap = OutputCapture(paths, steps=2)
    cap.save(0, 0, ["a caption", "another"])
    cap.save(0, 1, {"label": "cat"})
    cap.save(1, 0, b"another root's output")
    cap.finish(model_root=0)
    index = paths.outputs_index.read_text()
    assert "list[str]" in index and "dict[str]" in index and "bytes" not in index
    assert type_names(3) == ["int"]


def test_handles_reach_the_model_directly_and_through_objects():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))

    class Predictor:
        def __init__(self, net):
            self.net = net

    predictor = Predictor(model)
    wrapper = torch.nn.ModuleDict({"encoder": model})

    def inner(self=predictor):  # a method's own object is not a place to write to
        return handles(model[0], sys._getframe())

    found = {h["expr"] for h in inner()}
    assert {"model[0]", "predictor.net[0]", "wrapper.encoder[0]"} <= found
    assert not any(h["expr"].startswith("self") for h in inner())
    direct = handles(model, sys._getframe())
    assert direct[0]["expr"] == "model" and direct[0]["function"].startswith("test_handles")
    assert predictor and wrapper  # kept alive, referenced in this frame


def test_autocast_state_reads_the_scripts_own_autocast():
    assert autocast_state() == {}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert autocast_state() == {"cpu": "bfloat16"}


GENERATE = textwrap.dedent(
    """\
    import sys
    from pathlib import Path

    from dsprof.runner.generate import GeneratedTokens, in_generate

    tokens = GeneratedTokens()
    tokens.install()  # before transformers is imported: the post-import hook wraps generate()
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    gpt = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64)).eval()
    seen = []
    gpt.register_forward_pre_hook(lambda m, a: seen.append(in_generate()))
    prompt = torch.randint(0, 64, (2, 5))
    out = gpt.generate(prompt, max_new_tokens=3, min_new_tokens=3, do_sample=False,
                       pad_token_id=0, return_dict_in_generate=True)
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64,
        num_layers=1, num_heads=2, decoder_start_token_id=0, pad_token_id=0)).eval()
    t5.generate(prompt, max_new_tokens=2, min_new_tokens=2, do_sample=False)
    gpt(prompt)
    tokens.write(Path(sys.argv[1]))
    tokens.uninstall()
    print(all(seen[:3]), seen[-1], tokens.total_calls)
    """
)


@pytest.mark.slow
def test_generate_is_recorded_from_a_post_import_hook(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", GENERATE, str(tmp_path / "generated.pt")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [
        "True",
        "False",
        "2",
    ]  # decode calls seen as such; a plain call not
    doc = torch.load(tmp_path / "generated.pt", weights_only=True)
    gpt, t5 = doc["calls"]
    assert gpt["sequences"].shape == (2, 8) and gpt["prompt_len"] == 5  # prompt + 3 generated
    assert t5["sequences"].shape == (2, 3) and t5["prompt_len"] == 1  # decoder start + 2
