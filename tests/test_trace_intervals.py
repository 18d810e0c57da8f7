"""Interval arithmetic, exact on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest

from dsprof.trace.intervals import (
    busy_ns,
    clusters,
    covered_ns_each,
    gaps,
    innermost_containing,
    outermost,
    overlap_ns,
    union_intervals,
)


def a(*v: int) -> np.ndarray:
    return np.array(v, dtype=np.int64)


def test_union_merges_overlaps_and_touching() -> None:
    s, e = union_intervals(a(5, 0, 2, 10, 12), a(7, 3, 4, 12, 13))
    assert s.tolist() == [0, 5, 10] and e.tolist() == [4, 7, 13]


def test_busy_and_gaps_clip_to_window() -> None:
    assert busy_ns(a(0, 10), a(5, 20), 2, 15) == 8
    gs, ge = gaps(a(0, 10), a(5, 20), 0, 30)
    assert gs.tolist() == [5, 20] and ge.tolist() == [10, 30]
    assert busy_ns(a(), a(), 0, 10) == 0
    gs, ge = gaps(a(), a(), 0, 10)
    assert gs.tolist() == [0] and ge.tolist() == [10]


def test_overlap_of_unions() -> None:
    assert overlap_ns(a(0, 10), a(5, 20), a(3), a(12)) == 4
    assert overlap_ns(a(0), a(5), a(), a()) == 0


def test_covered_each() -> None:
    got = covered_ns_each(a(0, 4, 11, 40), a(3, 9, 30, 50), a(2, 5, 8), a(4, 6, 12))
    assert got.tolist() == [1, 2, 1, 0]


def test_clusters_by_gap() -> None:
    s, e, n = clusters(a(0, 5, 100, 104, 300), a(2, 7, 102, 106, 301), 10)
    assert s.tolist() == [0, 100, 300] and e.tolist() == [7, 106, 301] and n.tolist() == [2, 2, 1]


def test_outermost_per_thread() -> None:
    mask = outermost(a(1, 1, 1, 2, 2, 1), a(0, 1, 5, 0, 3, 20), a(10, 3, 8, 2, 4, 25))
    assert mask.tolist() == [True, False, False, True, True, True]


@pytest.mark.parametrize(
    ("q_group", "q_time", "expected"),
    [(1, 2, 2), (1, 3, 1), (1, 4, 0), (1, 6, 3), (2, 5, 4), (3, 1, -1), (1, 11, -1), (1, 9, 0)],
    ids=[
        "deepest",
        "after-leaf",
        "parent",
        "second-child",
        "other-thread",
        "no-thread",
        "after-all",
        "after-child",
    ],
)
def test_innermost_containing(q_group: int, q_time: int, expected: int) -> None:
    groups, starts, ends = a(1, 1, 1, 1, 2), a(0, 1, 2, 5, 0), a(10, 4, 3, 8, 9)
    got = innermost_containing(groups, starts, ends, a(q_group), a(q_time))
    assert got.tolist() == [expected]


def test_innermost_containing_deep_flat_siblings() -> None:
    # one parent with 2000 short children: the parent search must not degrade per sibling
    n = 2000
    starts = np.concatenate([a(0), np.arange(n, dtype=np.int64) * 10 + 1])
    ends = np.concatenate([a(n * 10 + 5), np.arange(n, dtype=np.int64) * 10 + 5])
    groups = np.ones(n + 1, dtype=np.int64)
    q = np.arange(n, dtype=np.int64) * 10 + 7  # between children: only the parent contains it
    got = innermost_containing(groups, starts, ends, np.ones(n, dtype=np.int64), q)
    assert (got == 0).all()
