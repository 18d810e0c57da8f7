"""The terminal output of run, analyze and fix reads well at 80 columns: lists, not tables whose
cells wrap into columns of fragments (issue 13, class 8)."""

from __future__ import annotations

import io

from report_synthetic import findings_doc, fix_session
from rich.console import Console
from trace_cache import findings

from dsprof.recipes.table import fix_tables
from dsprof.report.text import FindingsList, notices_text

WIDTH = 80


def _render(*parts: object, width: int = WIDTH) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None, record=True)
    for p in parts:
        console.print(p)
    return console.export_text().splitlines()


def test_findings_list_at_80_columns() -> None:
    doc = findings("hta/rank0.json.gz")
    lines = _render(FindingsList(doc))
    assert all(len(line) <= WIDTH for line in lines), [ln for ln in lines if len(ln) > WIDTH]
    heads = [ln for ln in lines if ln and not ln.startswith(" ")]
    assert heads[0] == f"Findings ({len(doc.findings)}, by impact)"
    # one head line per finding: severity, category, impact and the title's start
    first = doc.sorted().findings[0]
    assert heads[1].split()[:3] == [first.severity, first.category, f"{first.impact:.0%}"]
    assert first.title.split()[0] in heads[1]
    assert len(heads) == 1 + len(doc.findings)
    # evidence and recipes indented below their finding
    assert any(ln.startswith("      GPU idle share") for ln in lines)  # in human units
    assert any(ln.strip().startswith("recipes: cuda-graphs") for ln in lines)


def test_each_finding_gets_its_action_sentence() -> None:
    doc = findings_doc()
    actions = ["DataLoader at x.py:9 runs with num_workers=0; try num_workers=2", ""]
    lines = _render(FindingsList(doc, actions=actions))
    text = " ".join(" ".join(lines).split())
    assert "Do: DataLoader at x.py:9 runs with num_workers=0; try num_workers=2" in text
    assert text.count("Do: ") == 1  # a finding without an action prints none


def test_narrow_and_wide_terminals_wrap_the_same_words() -> None:
    doc = findings_doc()
    narrow = _render(FindingsList(doc), width=60)
    wide = _render(FindingsList(doc), width=200)
    assert all(len(ln) <= 60 for ln in narrow)
    assert " ".join(" ".join(narrow).split()) == " ".join(" ".join(wide).split())


def test_notices_are_printed() -> None:
    doc = findings("hta/mtia_rank_0.json.gz")
    lines = _render(*notices_text(doc))
    assert lines[0].startswith("notice (unsupported-device):")
    assert all(len(line) <= WIDTH for line in lines)


def test_fix_output_at_80_columns() -> None:
    lines = _render(*fix_tables(fix_session("20260101-000000-x-abcd")))
    assert all(len(line) <= WIDTH for line in lines), [ln for ln in lines if len(ln) > WIDTH]
    assert "Recipes considered" in lines
    # the list says what it times: iterations start to start, untraced reference vs trials
    assert any(ln.startswith("Before / after, per iteration (start to start)") for ln in lines)
    reference = next(ln for ln in lines if ln.startswith("  reference"))
    assert "p50 10.0 ms" in reference  # what was measured; unknown numbers are left out
    assert "steps/s" not in "\n".join(lines)
