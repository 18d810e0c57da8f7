"""The HTML and markdown reports and `dsprof report`: determinism, escaping, sizes, errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from report_synthetic import EVIL_MODULE, EVIL_OP, RUN_ID, make_run

from dsprof.cli.main import main
from dsprof.report.build import build_report
from dsprof.report.html import render_html, script_json
from dsprof.report.markdown import md_cell, render_markdown
from dsprof.store import load_run

# plotly.js alone is ~4.6 MB (DESIGN.md measured ~4.8 MB for a self-contained page)
TRACES = Path(__file__).parent / "data" / "traces"
MIN_INLINE_BYTES = 3_000_000
MAX_CDN_BYTES = 300_000


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_run(root, fix=True, ranks=2)
    return root


def test_same_run_gives_same_bytes(runs: Path) -> None:
    first = render_html(build_report(load_run(runs / RUN_ID)), cdn=True)
    second = render_html(build_report(load_run(runs / RUN_ID)), cdn=True)
    assert first == second


def test_html_names_are_escaped(runs: Path) -> None:
    page = render_html(build_report(load_run(runs / RUN_ID)), cdn=True)
    # the raw names never reach the page: text is entity-escaped, figure JSON unicode-escaped
    assert EVIL_OP not in page and EVIL_MODULE not in page
    assert page.count("</script>") == page.count("<script")
    assert "&lt;/script&gt;&lt;b&gt;x" in page
    # a trial named after the op is a plotly label: entity-escaped for plotly, then & as \u0026
    assert "\\u0026lt;/script\\u0026gt;\\u0026lt;b\\u0026gt;x" in page


def test_script_json_cannot_close_the_script() -> None:
    text = str(script_json({"name": "</script><script>alert(1)</script>", "x": "a\u2028b&"}))
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text


def test_inline_and_cdn_sizes(runs: Path) -> None:
    report = build_report(load_run(runs / RUN_ID))
    inline, cdn = render_html(report), render_html(report, cdn=True)
    assert len(inline.encode()) > MIN_INLINE_BYTES
    assert len(cdn.encode()) < MAX_CDN_BYTES
    assert re.search(r'src="https://cdn\.plot\.ly/plotly-[\d.]+\.min\.js" integrity="sha384-', cdn)
    assert "cdn.plot.ly" not in inline[:2000]


def test_markdown_reads_as_a_reviewer_wants_and_has_no_markup(runs: Path) -> None:
    md = render_markdown(build_report(load_run(runs / RUN_ID)))
    outside_fence = re.sub(r"```diff\n.*?\n```", "", md, flags=re.S)
    assert "<script" not in outside_fence and "<b>" not in outside_fence
    assert "- **high** gpu-idle, 42%: GPU idle 42% of the step" in md  # findings as a list
    assert "<details><summary>evidence</summary>" in md  # the evidence folded
    assert "Do: " in md and "/work/project" not in md  # an action; no absolute paths
    assert "&lt;/script&gt;&lt;b&gt;x" in md
    # the diff keeps its text, inside a fence where markdown shows it literally
    assert "```diff\n" in md and "+model.compile()  # </script><b>x" in md


def test_md_cell_escapes_table_syntax() -> None:
    assert md_cell("a|b\n<i>c</i>") == "a\\|b &lt;i&gt;c&lt;/i&gt;"


def test_cli_report_html_default_path(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(runs / RUN_ID), "--cdn"]) == 0
    out = runs / RUN_ID / "report.html"
    assert out.is_file() and "fig-timeline" in out.read_text(encoding="utf-8")
    assert str(out) in capsys.readouterr().err


def test_cli_report_md_by_id(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", RUN_ID, "--runs-dir", str(runs), "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("### dsprof: ") and RUN_ID in md.splitlines()[0]
    # the verdict line comes first: the fix session's result
    assert md.splitlines()[2].startswith("**dsprof fix: compile (combined): 10 ms → 5.56 ms")


def test_cli_report_md_to_file(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    assert main(["report", str(runs / RUN_ID), "--format", "md", "-o", str(out)]) == 0
    assert "#### Findings (2)" in out.read_text(encoding="utf-8")


def test_cli_report_errors(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no run folder" in capsys.readouterr().err
    assert main(["report", str(runs / RUN_ID), "-o", str(tmp_path / "missing" / "r.html")]) == 2
    assert "folder does not exist" in capsys.readouterr().err
    (runs / RUN_ID / "findings.json").write_text("{", encoding="utf-8")
    try:
        assert main(["report", str(runs / RUN_ID), "--format", "md"]) == 0
        assert (
            "not valid JSON" in capsys.readouterr().out
        )  # a broken findings.json is shown, not fatal
    finally:
        from report_synthetic import findings_doc

        from dsprof.store.documents import write_model

        write_model(runs / RUN_ID / "findings.json", findings_doc())


def test_failed_run_with_nothing_collected(tmp_path: Path) -> None:
    """A run that died at start: run.json only, and a trace file that is not JSON."""
    from dsprof.core.manifest import RunManifest
    from dsprof.store.documents import write_model
    from dsprof.store.layout import RunPaths

    paths = RunPaths(tmp_path / "20260101-120000-failed-0000")
    paths.make_dirs()
    (paths.trace_dir / "host_1.pt.trace.json").write_text("not json", encoding="utf-8")
    write_model(
        paths.manifest,
        RunManifest(
            run_id=paths.root.name,
            argv=["x.py"],
            target="x.py",
            cwd="/",
            start_ns=0,
            status="failed",
            exit_code=1,
            error="RuntimeError: <b>boom</b>",
        ),
    )
    report = build_report(load_run(paths.root))
    assert report.figures == []
    assert any("could not be read" in n for n in report.notes)
    assert report.view.duration_text == "duration unknown"
    md = render_markdown(report)
    assert "```\nRuntimeError: <b>boom</b>\n```" in md
    page = render_html(report, cdn=True)
    assert "RuntimeError: &lt;b&gt;boom&lt;/b&gt;" in page


def test_markdown_against_a_base_run(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from report_synthetic import make_run

    base = make_run(runs, "20260101-110000-base-0b0b", base_ms=12.0, gpu=False, findings=False)
    argv = ["report", str(runs / RUN_ID), "--format", "md", "--base", str(base)]
    assert main(argv) == 0
    md = capsys.readouterr().out
    assert f"| | this run | base {base.name} | Δ |" in md.replace("|  |", "| |")
    row = next(line for line in md.splitlines() if line.startswith("| iteration p50 |"))
    assert "| 11.4 ms (model 10.4 ms) | 13.5 ms | -15.4 % \\[" in row and "faster" in row
    assert "Against the base run: iteration p50" in md


def test_report_html_links_its_trace_relatively(runs: Path, tmp_path: Path) -> None:
    import shutil

    trace = runs / RUN_ID / "trace" / "box_1.pt.trace.json.gz"
    shutil.copy(TRACES / "hta" / "event_sync_trace.json.gz", trace)
    try:
        assert main(["report", str(runs / RUN_ID), "--cdn"]) == 0
        page = (runs / RUN_ID / "report.html").read_text(encoding="utf-8")
        assert 'href="trace/box_1.pt.trace.json.gz"' in page
        out = tmp_path / "sub" / "r.html"
        out.parent.mkdir()
        assert main(["report", str(runs / RUN_ID), "--cdn", "-o", str(out)]) == 0
        expected = Path(os.path.relpath(trace, out.parent)).as_posix()
        assert f'href="{expected}"' in out.read_text(encoding="utf-8")
    finally:
        trace.unlink()


def test_report_of_a_bare_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    trace = tmp_path / "worker0.pt.trace.json.gz"
    shutil.copy(
        TRACES / "kineto/resnet50_num_workers_0/worker0.1623143089861.pt.trace.json.gz", trace
    )
    assert main(["report", str(trace), "--cdn"]) == 0
    out = tmp_path / "worker0.report.html"
    page = out.read_text(encoding="utf-8")
    assert 'id="fig-breakdown"' in page and 'href="worker0.pt.trace.json.gz"' in page
    assert 'data-category="io-stall"' in page and "iteration p50" in page
    assert main(["report", str(trace), "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("### dsprof: worker0.pt.trace.json.gz\n")
    assert main(["report", str(tmp_path / "missing.json.gz")]) == 2
