"""The self-contained HTML report: jinja2 with autoescape, plotly.js inlined (or from the CDN).

Escaping has three layers, because names come from the user's program (an op named
`</script><b>x` via record_function, a module class with `<b>` in its name):
- page text goes through jinja2's autoescape;
- figure JSON sits in `<script type="application/json">` with `<`, `>` and `&` written as
  JSON unicode escapes, so no string can close the script element;
- plotly labels are escaped by dsprof.report.figures.plot_text, so plotly.js shows them as text.
The output is deterministic: no timestamps, no random div ids (same run -> same bytes).
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from dsprof.report.figures import figure_json

if TYPE_CHECKING:
    from dsprof.report.build import Report

_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def script_json(obj: Any) -> Markup:
    """JSON that is safe inside a <script> element, whatever strings it holds."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in _JSON_ESCAPES.items():
        text = text.replace(raw, escaped)
    return Markup(text)


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("dsprof.report", "templates"),
        autoescape=True,  # every {{ }} is escaped unless it is Markup built here
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def plotly_loader(cdn: bool) -> Markup:
    """The <script> that provides plotly.js: inlined (opens offline) or the pinned CDN file."""
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    js = get_plotlyjs()
    if cdn:
        # subresource integrity pins the CDN file to the bundled version's exact bytes
        digest = base64.b64encode(hashlib.sha384(js.encode("utf-8")).digest()).decode()
        url = f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"
        return Markup(
            f'<script charset="utf-8" src="{url}" integrity="sha384-{digest}" '
            'crossorigin="anonymous"></script>'
        )
    return Markup('<script type="text/javascript">') + Markup(js) + Markup("</script>")


def trace_links(report: Report, out: Path | None) -> list[tuple[str, str]]:
    """(name, href) of the run's traces, relative to where the page is written (the run folder
    when `out` is None), so the link works wherever the folder and the page travel together."""
    import os

    links = []
    for rel in report.trace_files:
        href = rel if out is None else os.path.relpath(report.root / rel, out.parent)
        links.append((rel, Path(href).as_posix()))
    return links


def render_html(report: Report, *, cdn: bool = False, out: Path | None = None) -> str:
    """The report page as one string; `out`: where it will be written (for relative links)."""
    from dsprof import __version__

    template = _environment().get_template("report.html.j2")
    figures = [
        {"key": spec.key, "title": spec.title, "json": script_json(figure_json(spec.figure))}
        for spec in report.figures
    ]
    return template.render(
        view=report.view,
        figures=figures,
        breakdown=next((f for f in figures if f["key"] == "breakdown"), None),
        figure_notes=report.notes,
        traces=trace_links(report, out),
        plotly_loader=plotly_loader(cdn),
        version=__version__,
    )


def write_html(report: Report, out: Path, *, cdn: bool = False) -> int:
    """Write the report atomically; returns its size in bytes."""
    from dsprof.store.documents import write_text_atomic

    text = render_html(report, cdn=cdn, out=out)
    write_text_atomic(out, text)
    return len(text.encode("utf-8"))
