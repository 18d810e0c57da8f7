"""Reports of a run: terminal text, self-contained HTML, markdown, and the figures they share.

    from dsprof.report.build import build_report, write_report
    report = build_report(load_run(path))      # view-model (view_model.py) + figures (figures.py)
    html.render_html(report, cdn=False)        # one page, plotly.js inlined
    markdown.render_markdown(report)           # tables for a pull-request comment
    compare.compare_runs(a, b)                 # KPI deltas and the --fail-above gate

Collect -> process -> render: view_model.py and figures.py are pure functions of a RunData;
html.py, markdown.py, text.py and the dashboard only render them. Nothing here imports torch.
"""
