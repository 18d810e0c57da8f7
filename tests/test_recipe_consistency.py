"""Every recipe a finding suggests addresses that finding's category (Recipe.addresses), so
`dsprof fix` tries what `dsprof analyze` advises and nothing it does not.

Checked on the findings of every real trace in tests/data/traces, of the planted `dsprof run`
scripts (slow), and on the per-cause recipe table of gpu-idle, whose causes the real traces
may not all reach.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from planted_runs import PLANTED_DIR, planted_run
from trace_cache import DATA, findings

from dsprof.analyzers.gpu_idle import CAUSE_RECIPES
from dsprof.core.findings import Finding
from dsprof.recipes.registry import BY_NAME


def _mismatches(found: list[Finding]) -> list[str]:
    out = []
    for f in found:
        for r in f.recipes:
            if r not in BY_NAME:
                out.append(f"{f.category}: unknown recipe {r!r}")
            elif f.category not in BY_NAME[r].addresses:
                out.append(f"{f.category} suggests {r}, which addresses {BY_NAME[r].addresses}")
    return out


def _trace_targets() -> list[str]:
    files = [
        str(p.relative_to(DATA))
        for p in sorted(DATA.rglob("*.json*"))
        if "dlrm_kineto" not in p.parts
    ]
    return [*files, "param/dlrm_kineto"]


@pytest.mark.parametrize("rel", _trace_targets())
def test_real_trace_findings_suggest_recipes_that_address_them(rel: str) -> None:
    assert _mismatches(findings(rel).findings) == []


def test_every_gpu_idle_cause_suggests_recipes_that_address_gpu_idle() -> None:
    for cause, recipes in CAUSE_RECIPES.items():
        for r in recipes:
            assert "gpu-idle" in BY_NAME[r].addresses, (cause, r)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(p.stem for p in PLANTED_DIR.glob("*.py")))
def test_planted_run_findings_suggest_recipes_that_address_them(script: str) -> None:
    doc = planted_run(script).findings
    assert doc is not None
    assert _mismatches(doc.findings) == []


def test_the_check_can_fail() -> None:
    bad = Finding(category="host-sync", severity="high", title="t", impact=0.5, recipes=["tf32"])
    assert _mismatches([bad]) == ["host-sync suggests tf32, which addresses ('no-tensor-cores',)"]
    assert Path(DATA).is_dir()
