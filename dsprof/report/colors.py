"""One colour per series, the same in every figure of the report and the dashboard.

A series keeps its colour whichever figure, run or page shows it, so "data wait" is orange in
the breakdown, in a comparison and on the dashboard alike. Colours from the Tableau 10 palette
(readable on white, distinct for the common forms of colour blindness when paired as below).
"""

from __future__ import annotations

SERIES_COLORS: dict[str, str] = {
    # an iteration and its parts (dsprof.report.breakdown)
    "iteration": "#9ecae1",
    "traced": "#dadaeb",  # iterations the profiler recorded (left out of the figures)
    "model": "#1f77b4",
    "data wait": "#ff7f0e",
    "host sync": "#d62728",
    "other": "#7f7f7f",
    "kernel": "#2ca02c",
    "memcpy": "#9467bd",
    "GPU idle": "#c7c7c7",
    # the timeline's samples
    "process CPU": "#8c564b",
    "system CPU": "#e377c2",
    "RSS": "#bcbd22",
    "GPU util": "#2ca02c",
    "GPU mem": "#9467bd",
    "GPU power": "#ff7f0e",
    # comparisons: run A and run B
    "A": "#1f77b4",
    "B": "#ff7f0e",
    # fix trials
    "accepted": "#2ca02c",
    "slower": "#d62728",
    "no change": "#7f7f7f",
}
# a second, third... GPU of the same metric: the same colour, another dash
GPU_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
