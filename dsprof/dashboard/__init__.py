"""The Dash app over a directory of run folders: `create_app(store)` in dsprof.dashboard.app.

Pages are built in pages.py and runs_list.py from dsprof.report's view-model and figures; it reads
run folders only, binds 127.0.0.1 by default, and answers unknown paths and invalid run ids with 404.
"""
