"""Vectorised interval arithmetic on int64 ns (start, end) arrays: unions, gaps, overlaps."""

from __future__ import annotations

import numpy as np


def union_intervals(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge overlapping [start, end) intervals; returns sorted disjoint (starts, ends)."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if not len(starts):
        return starts, ends
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    # a new merged interval begins where a start lies beyond everything before it
    new = np.empty(len(s), dtype=bool)
    new[0] = True
    new[1:] = s[1:] > reach[:-1]
    out_s = s[new]
    out_e = np.maximum.reduceat(e, np.flatnonzero(new))
    return out_s, out_e


def clip(starts: np.ndarray, ends: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Intervals cut to [lo, hi); empty ones dropped."""
    s = np.clip(np.asarray(starts, dtype=np.int64), lo, hi)
    e = np.clip(np.asarray(ends, dtype=np.int64), lo, hi)
    keep = e > s
    return s[keep], e[keep]


def busy_ns(starts: np.ndarray, ends: np.ndarray, lo: int, hi: int) -> int:
    """Length of the union of the intervals inside [lo, hi)."""
    s, e = union_intervals(*clip(starts, ends, lo, hi))
    return int((e - s).sum())


def gaps(starts: np.ndarray, ends: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """The idle intervals of [lo, hi) not covered by any interval."""
    s, e = union_intervals(*clip(starts, ends, lo, hi))
    gap_s = np.concatenate([[lo], e])
    gap_e = np.concatenate([s, [hi]])
    keep = gap_e > gap_s
    return gap_s[keep], gap_e[keep]


def overlap_ns(
    a_starts: np.ndarray, a_ends: np.ndarray, b_starts: np.ndarray, b_ends: np.ndarray
) -> int:
    """Length of (union of a) ∩ (union of b)."""
    a_s, a_e = union_intervals(a_starts, a_ends)
    b_s, b_e = union_intervals(b_starts, b_ends)
    if not len(a_s) or not len(b_s):
        return 0
    # |A ∩ B| = |A| + |B| - |A ∪ B|
    u_s, u_e = union_intervals(np.concatenate([a_s, b_s]), np.concatenate([a_e, b_e]))
    return int((a_e - a_s).sum() + (b_e - b_s).sum() - (u_e - u_s).sum())


def covered_ns_each(
    starts: np.ndarray, ends: np.ndarray, cover_starts: np.ndarray, cover_ends: np.ndarray
) -> np.ndarray:
    """For each interval, how many ns of it the union of the cover intervals overlaps."""
    c_s, c_e = union_intervals(cover_starts, cover_ends)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if not len(c_s) or not len(starts):
        return np.zeros(len(starts), dtype=np.int64)
    # prefix sums of covered length let each query be answered with two searchsorted calls
    cum = np.concatenate([[0], np.cumsum(c_e - c_s)])

    def covered_before(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(c_s, t, side="right")  # covers starting at or before t
        full = cum[np.maximum(i - 1, 0)]
        partial = np.where(
            i > 0, np.minimum(t, c_e[np.maximum(i - 1, 0)]) - c_s[np.maximum(i - 1, 0)], 0
        )
        return np.where(i > 0, full + partial, 0)

    return covered_before(ends) - covered_before(starts)


def clusters(
    starts: np.ndarray, ends: np.ndarray, max_gap_ns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group intervals whose gap to the previous one is at most max_gap_ns.

    Returns (cluster starts, cluster ends, intervals per cluster): runs of back-to-back small
    events, such as a Python loop of .item() calls or of tiny ops.
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if not len(starts):
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    new = np.empty(len(s), dtype=bool)
    new[0] = True
    new[1:] = s[1:] - reach[:-1] > max_gap_ns
    first = np.flatnonzero(new)
    counts = np.diff(np.append(first, len(s)))
    return s[first], np.maximum.reduceat(e, first), counts


def outermost(groups: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Mask of intervals not nested inside an earlier interval of the same group (thread).

    Inputs need not be sorted; the mask is in input order.
    """
    groups = np.asarray(groups)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    n = len(starts)
    if not n:
        return np.zeros(0, dtype=bool)
    # sort by (group, start, longest first) so a parent precedes the children it contains
    order = np.lexsort((-ends, starts, groups))
    g, s, e = groups[order], starts[order], ends[order]
    first_of_group = np.empty(n, dtype=bool)
    first_of_group[0] = True
    first_of_group[1:] = g[1:] != g[:-1]
    # running max of ends within each group: offset groups so one global accumulate suffices
    big = np.int64(1) << np.int64(62)
    gid = np.cumsum(first_of_group) - 1
    shifted = e - s.min() + gid.astype(np.int64) * (big // max(int(gid.max()) + 1, 1))
    reach = np.maximum.accumulate(shifted)
    prev = np.empty(n, dtype=np.int64)
    prev[0] = np.iinfo(np.int64).min
    prev[1:] = reach[:-1]
    top_sorted = first_of_group | (s - s.min() + gid * (big // max(int(gid.max()) + 1, 1)) >= prev)
    mask = np.empty(n, dtype=bool)
    mask[order] = top_sorted
    return mask


def innermost_containing(
    groups: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    q_groups: np.ndarray,
    q_times: np.ndarray,
) -> np.ndarray:
    """For each query (group, time), the index of the innermost interval of that group containing
    the time, or -1. Intervals must nest properly within a group (as profiler op spans do).

    Vectorised: parents are found by pointer jumping (O(n log depth)), then each query climbs
    from the last interval starting before it; Python loops run per group (thread), not per event.
    """
    groups = np.asarray(groups)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    q_groups = np.asarray(q_groups)
    q_times = np.asarray(q_times, dtype=np.int64)
    out = np.full(len(q_times), -1, dtype=np.int64)
    n = len(starts)
    if not n or not len(q_times):
        return out
    order = np.lexsort((-ends, starts, groups))
    g, s, e = groups[order], starts[order], ends[order]
    parent = _parents(g, e)
    cand = np.full(len(q_times), -1, dtype=np.int64)
    bounds = np.flatnonzero(np.r_[True, g[1:] != g[:-1], True])
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=False):
        sel = q_groups == g[lo]
        if sel.any():
            cand[sel] = lo + np.searchsorted(s[lo:hi], q_times[sel], side="right") - 1
            cand[sel & (cand < lo)] = -1
    while True:  # climb to the first ancestor that is still open at the query time
        valid = cand >= 0
        bad = valid & (e[np.maximum(cand, 0)] <= q_times)
        if not bad.any():
            break
        cand[bad] = parent[cand[bad]]
    out[cand >= 0] = order[cand[cand >= 0]]
    return out


def _parents(g: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Parent of each interval (sorted by group, start, longest first) by pointer jumping.

    The parent of i is the first interval on the chain (i-1, parent(i-1), ...) that ends at or
    after i. Jumping through estimates never overshoots: an interval skipped for j (it ends before
    j) also ends before any later i whose chain passes through j with end(j) < end(i).
    """
    n = len(e)
    p = np.arange(n) - 1
    p[0] = -1
    p[1:][g[1:] != g[:-1]] = -1
    while True:
        valid = p >= 0
        bad = valid & (e[np.maximum(p, 0)] < e)
        if not bad.any():
            return p
        p[bad] = p[p[bad]]
