"""IoU and friends: properties (hypothesis) and hand-computed cases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rewards.iou import (
    boundary_factor,
    fix_interval,
    interval_iop,
    interval_iou,
    merge_intervals,
    union_iop,
    union_iou,
)


@st.composite
def intervals(draw):
    """Positive-length intervals on a 0.1 s grid, as timestamps are written."""
    a = draw(st.integers(0, 2000))
    b = draw(st.integers(0, 2000).filter(lambda x: x != a))
    lo, hi = min(a, b), max(a, b)
    return (lo / 10, hi / 10)


@given(intervals(), intervals())
def test_iou_is_symmetric_and_bounded(a, b):
    x = interval_iou(a, b)
    assert x == interval_iou(b, a)
    assert 0.0 <= x <= 1.0


@given(intervals(), intervals())
def test_iou_is_one_iff_equal(a, b):
    assert (interval_iou(a, b) == 1.0) == (a == b)
    assert interval_iou(a, a) == 1.0


@given(intervals(), intervals())
def test_iou_is_zero_iff_disjoint(a, b):
    disjoint = a[1] <= b[0] or b[1] <= a[0]
    assert (interval_iou(a, b) == 0.0) == disjoint


@given(intervals(), intervals())
def test_union_iou_matches_iou_for_single_intervals(a, b):
    assert union_iou([a], [b]) == pytest.approx(interval_iou(a, b))


@given(intervals(), intervals(), st.integers(1, 9))
def test_union_iou_ignores_how_a_set_is_split(a, b, k):
    mid = a[0] + (a[1] - a[0]) * k / 10
    assert union_iou([(a[0], mid), (mid, a[1])], [b]) == pytest.approx(interval_iou(a, b))


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((0, 10), (5, 15), 5 / 15),
        ((0, 10), (0, 10), 1.0),
        ((0, 10), (10, 20), 0.0),  # touching
        ((0, 10), (2, 4), 0.2),  # containment
        ((5, 5), (5, 5), 1.0),  # equal points
        ((5, 5), (0, 10), 0.0),
    ],
)
def test_iou_cases(a, b, expected):
    assert interval_iou(a, b) == pytest.approx(expected)


def test_iop_cases():
    assert interval_iop((2, 4), (0, 10)) == 1.0
    assert interval_iop((5, 15), (0, 10)) == 0.5
    assert interval_iop((5, 5), (0, 10)) == 0.0
    assert union_iop([(0, 2), (8, 12)], [(0, 10)]) == pytest.approx(4 / 6)


def test_merge_and_union_sets():
    assert merge_intervals([(5, 8), (0, 2), (1, 3), (8, 9)]) == [(0, 3), (5, 9)]
    # pred {0-2, 4-6} vs gt {1-5}: inter 1+1=2, union 4+4-2=6
    assert union_iou([(0, 2), (4, 6)], [(1, 5)]) == pytest.approx(2 / 6)
    assert union_iou([], [(1, 5)]) == 0.0


@pytest.mark.parametrize(
    "iv, duration, on_reversed, clip, expected",
    [
        ((20, 10), 30, "swap", True, (10, 20)),
        ((20, 10), 30, "zero", True, None),
        ((-5, 40), 30, "swap", True, (0, 30)),
        ((-5, 40), 30, "swap", False, (-5, 40)),
        ((-5, 40), None, "swap", True, (0, 40)),
        ((35, 40), 30, "swap", True, (30, 30)),
    ],
)
def test_fix_interval(iv, duration, on_reversed, clip, expected):
    assert fix_interval(iv, duration, on_reversed, clip) == expected


def test_boundary_factor():
    # |dstart| = 2, |dend| = 5 over 100 s
    assert boundary_factor((12, 25), (10, 20), 100) == pytest.approx(0.98 * 0.95)
    assert boundary_factor((0, 300), (10, 20), 100) == 0.0  # floored at 0
