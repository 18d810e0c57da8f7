"""Reports of a run: terminal text, self-contained HTML, markdown, and the figures they share.

    from dsprof.report.build import build_report, write_report
    report = build_report(load_run(path))      # view-model (view_model.py) + figures (figures.py)
    html.render_html(report, cdn=False)        # one page, plotly.js inlined
    markdown.render_markdown(report, base)     # a pull-request comment (KPIs against a base run)
    compare.compare_runs(a, b)                 # what changed, the noise interval, the gate
    trace_report.build_trace_report(paths)     # the same page for bare Kineto traces

The first screen: fix_view.py (the fix banner), actions.py (one action sentence per finding),
evidence.py (evidence in human units), breakdown.py (where each iteration's time goes);
colors.py gives each series one colour in every figure; compare_figures.py draws two runs on
shared axes.

Collect -> process -> render: view_model.py and figures.py are pure functions of a RunData;
html.py, markdown.py, text.py and the dashboard only render them. Nothing here imports torch.
"""
