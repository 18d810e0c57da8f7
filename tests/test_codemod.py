"""libcst codemod on sample scripts: placement, manual fallbacks, and the result runs with python."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dsprof.recipes.codemod import Handle, apply_changes, write_backup_and_script
from dsprof.recipes.registry import get_recipe

SCRIPT = textwrap.dedent(
    '''\
    """A small inference script."""
    from __future__ import annotations

    import sys

    import torch
    from torch.utils.data import DataLoader


    def build():
        return torch.nn.Linear(8, 4)


    def main():
        torch.manual_seed(0)
        model = build()
        model = model.train()
        loader = DataLoader(torch.randn(8, 8), batch_size=4)
        for x in loader:
            y = model(x)
        print(tuple(y.shape), model.training, torch.get_num_threads())


    if __name__ == "__main__":
        main()
    '''
)
CALL_LINE = 20  # y = model(x)


def _changes(*names):
    return [(n, get_recipe(n).codemod(None)) for n in names]


def _line_of(source, text):
    return next(i for i, ln in enumerate(source.splitlines(), 1) if text in ln)


def test_model_changes_go_right_after_the_last_assignment_before_the_call():
    r = apply_changes(
        SCRIPT, _changes("eval-mode", "int8-dynamic"), path="s.py", call_line=CALL_LINE
    )
    assert r.model_var == "model"
    lines = r.source.splitlines()
    at = _line_of(r.source, "model = model.train()")
    assert lines[at].strip() == "model.eval()"
    assert lines[at + 1].strip().startswith("torch.ao.quantization.quantize_dynamic(model")
    assert "inplace=True" in lines[at + 1]
    assert lines[at].startswith("    ")  # same block as the assignment
    assert not r.manual


def test_flags_after_imports_env_before_imports_and_imports_added_once():
    r = apply_changes(
        SCRIPT, _changes("alloc-conf", "threads", "compile"), path="s.py", call_line=CALL_LINE
    )
    src = r.source
    assert (
        _line_of(src, "from __future__") < _line_of(src, "import os") < _line_of(src, "import sys")
    )
    assert _line_of(src, 'os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF"') < _line_of(
        src, "import sys"
    )
    assert _line_of(src, "from torch.utils.data import DataLoader") < _line_of(
        src, "torch.set_num_threads("
    )
    assert src.count("import torch\n") == 1  # already imported: not added again
    assert "import torch._inductor.config" in src
    assert "    model.compile()" in src


def test_dataloader_keywords_are_set_on_the_call():
    r = apply_changes(SCRIPT, _changes("dataloader"), path="s.py", call_line=CALL_LINE)
    assert "DataLoader(torch.randn(8, 8), batch_size=4, num_workers=" in r.source
    assert "persistent_workers=True, prefetch_factor=4)" in r.source


def test_a_dataloader_with_chosen_workers_is_left_alone():
    src = SCRIPT.replace("batch_size=4)", "batch_size=4, num_workers=3)")
    r = apply_changes(src, _changes("dataloader"), path="s.py", call_line=CALL_LINE)
    assert r.source == src
    assert r.manual and "no DataLoader" in r.manual[0].reason


@pytest.mark.parametrize(
    ("source", "call_line", "same_file", "reason"),
    [
        (
            SCRIPT.replace("y = model(x)", "y = self_model.net(x)"),
            CALL_LINE,
            True,
            "plain variable",
        ),
        (SCRIPT, CALL_LINE, False, "not in this script"),
        (SCRIPT, None, True, "not in this script"),
        (
            "import torch\n\ndef run(model, x):\n    return model(x)\n",
            4,
            True,
            "not assigned or prepared before",
        ),
    ],
    ids=["attribute-call", "other-file", "no-call-site", "model-is-a-parameter"],
)
def test_unsafe_places_become_manual_changes(source, call_line, same_file, reason):
    r = apply_changes(
        source, _changes("eval-mode"), path="s.py", call_line=call_line, call_file_matches=same_file
    )
    assert r.source == source
    assert len(r.manual) == 1 and reason in r.manual[0].reason
    assert r.manual[0].code.endswith(".eval()")


def test_serving_and_fused_changes_are_printed_not_written():
    r = apply_changes(
        SCRIPT, _changes("batching", "fused-kernels"), path="s.py", call_line=CALL_LINE
    )
    assert r.source == SCRIPT
    assert {c.recipe for c in r.manual} == {"batching", "fused-kernels"}


def test_patched_script_runs_with_plain_python_and_keeps_a_backup(tmp_path):
    script = tmp_path / "infer.py"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    r = apply_changes(
        SCRIPT,
        _changes("threads", "eval-mode", "inference-mode", "dataloader"),
        path="infer.py",
        call_line=CALL_LINE,
    )
    diff = r.diff(SCRIPT, "infer.py")
    assert (
        diff.startswith("--- a/infer.py\n+++ b/infer.py\n") and "+        model.eval()" not in diff
    )
    assert "+    model.eval()" in diff
    backup = write_backup_and_script(script, r.source)
    assert backup.read_text() == SCRIPT
    assert script.stat().st_mode & 0o777 == 0o755
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    shape, training, _threads = out.stdout.split(")")[0] + ")", *out.stdout.split(")")[1].split()
    assert shape == "(4, 4)" and training == "False"
    # a second apply keeps the first backup (the true original)
    write_backup_and_script(script, r.source + "\n")
    assert backup.read_text() == SCRIPT


HELPER_CALL = textwrap.dedent(
    """\
    import torch


    def run(model, x):
        return model(x)


    def main():
        net = torch.nn.Linear(8, 4)
        net = net.train()
        print(run(net, torch.randn(2, 8)).shape, net.training)


    main()
    """
)


def test_a_model_called_through_a_helper_is_found_by_its_construction():
    r = apply_changes(
        HELPER_CALL, _changes("eval-mode"), path="s.py", call_line=5, model_class="Linear"
    )
    assert not r.manual and r.model_var == "net"
    lines = r.source.splitlines()
    assert lines[lines.index("    net = net.train()") + 1] == "    net.eval()"


def test_two_constructions_of_the_class_stay_manual():
    src = HELPER_CALL.replace("    net = net.train()", "    other = torch.nn.Linear(8, 4)")
    r = apply_changes(src, _changes("eval-mode"), path="s.py", call_line=5, model_class="Linear")
    assert r.source == src and "2 assignments build a Linear" in r.manual[0].reason


# -- placement after the last statement that prepares the model (issue 17) ------------------

CHECKPOINT = textwrap.dedent(
    """\
    import argparse

    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--ckpt")
    args = parser.parse_args()
    model = torch.nn.Sequential(torch.nn.Linear(8, 4))
    if args.ckpt:
        model.load_state_dict(torch.load(args.ckpt))
    model.eval()
    runner = {"net": model}
    x = torch.randn(2, 8)
    for _ in range(3):
        y = model(x)
        model.zero_grad()
    print(tuple(y.shape))
    """
)


def test_a_change_goes_after_the_weights_are_loaded_and_the_model_prepared():
    r = apply_changes(
        CHECKPOINT,
        _changes("int8-dynamic", "compile"),
        path="s.py",
        call_line=15,
        handles=[Handle(15, "model", "model")],
    )
    lines = r.source.splitlines()
    at = lines.index('runner = {"net": model}')  # the last statement naming the model
    assert lines[at + 1].startswith("torch.ao.quantization.quantize_dynamic(model,")
    assert lines[at + 2] == "model.compile()"
    # nothing between the construction and the checkpoint, nothing inside the loop
    assert (
        lines.index("if args.ckpt:")
        == lines.index("model = torch.nn.Sequential(torch.nn.Linear(8, 4))") + 1
    )
    assert lines.count("model.compile()") == 1 and not r.manual


def test_a_statement_inside_a_branch_anchors_after_the_branch():
    src = CHECKPOINT.replace('runner = {"net": model}\n', "").replace("model.eval()\n", "")
    r = apply_changes(
        src,
        _changes("eval-mode"),
        path="s.py",
        call_line=13,
        handles=[Handle(13, "model", "model")],
    )
    lines = r.source.splitlines()
    branch_end = lines.index("    model.load_state_dict(torch.load(args.ckpt))")
    assert lines[branch_end + 1] == "model.eval()"  # after the `if`, not inside it


def test_a_model_rebuilt_in_the_loop_is_prepared_in_the_loop():
    src = textwrap.dedent(
        """\
        import torch

        for seed in range(2):
            model = torch.nn.Linear(8, 4)
            model.train()
            y = model(torch.randn(2, 8))
        """
    )
    r = apply_changes(
        src, _changes("eval-mode"), path="s.py", call_line=6, handles=[Handle(6, "model", "model")]
    )
    assert "    model.train()\n    model.eval()\n" in r.source


PIPELINE_LIKE = textwrap.dedent(
    """\
    import torch


    class Predictor:
        def __init__(self):
            self.net = torch.nn.Sequential(torch.nn.Linear(8, 4))

        def predict(self, x):
            return self.net(x)


    predictor = Predictor()
    print(predictor.predict(torch.randn(2, 8)).shape)
    """
)


def test_a_model_inside_a_wrapper_object_is_changed_through_it():
    handles = [Handle(13, "predictor", "predictor.net")]  # `self.net` is not a place to write
    r = apply_changes(
        PIPELINE_LIKE,
        _changes("eval-mode", "int8-dynamic"),
        path="s.py",
        call_line=9,
        handles=handles,
    )
    assert r.model_var == "predictor.net" and not r.manual
    lines = r.source.splitlines()
    at = lines.index("predictor = Predictor()")
    assert lines[at + 1] == "predictor.net.eval()"
    assert lines[at + 2].startswith("torch.ao.quantization.quantize_dynamic(predictor.net,")


def test_patched_wrapper_script_runs_with_plain_python(tmp_path):
    r = apply_changes(
        PIPELINE_LIKE,
        _changes("int8-dynamic"),
        path="s.py",
        call_line=9,
        handles=[Handle(13, "predictor", "predictor.net")],
    )
    script = tmp_path / "s.py"
    script.write_text(r.source + "print(type(predictor.net[0]).__module__)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "quantized" in out.stdout  # the wrapper's own model was quantized, in place


def test_no_handle_with_an_anchor_prints_the_change_with_the_reasons():
    src = "import torch\n\ndef run(model, x):\n    return model(x)\n"
    r = apply_changes(
        src, _changes("eval-mode"), path="s.py", call_line=4, handles=[Handle(4, "model", "model")]
    )
    assert r.source == src and r.manual
    assert "model at line 4" in r.manual[0].reason
