"""Bucket counts computed without a floor or a selection equal the plain floor-and-select ones."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from simulator import buckets, checker

# times near bucket edges, far outside, NaN and infinities
TIMES = hnp.arrays(
    np.float64,
    st.integers(0, 60),
    elements=st.one_of(
        st.floats(-200, 1200),
        st.integers(-3, 12).map(lambda k: k * 100.0),
        st.sampled_from([-0.0, 1e-320, -1e-320, 99.99999999999999, np.nan, np.inf, -np.inf]),
    ),
)
GRIDS = st.sampled_from(
    [buckets.Grid(-100.0, 100.0, 11), buckets.Grid(0.0, 0.1, 7), buckets.Grid(-300.0, 7.0, 150)]
)


def plain_index(grid: buckets.Grid, times: np.ndarray) -> np.ndarray:
    """Bucket of each time by the definition: floor((t - start) / width), -1 if none."""
    raw = np.floor((times - grid.start_ms) / grid.bucket_ms)
    inside = (raw >= 0) & (raw < grid.n)
    return np.where(inside, np.nan_to_num(raw), -1).astype(np.int64)


@settings(deadline=None)
@given(times=TIMES, grid=GRIDS)
def test_grid_counts_and_buckets_follow_the_floor_definition(times: np.ndarray, grid: buckets.Grid):
    expected = plain_index(grid, times)
    np.testing.assert_array_equal(grid.bucket_of(times, chunk=7), expected)
    counts = np.bincount(expected[expected >= 0], minlength=grid.n)
    np.testing.assert_array_equal(grid.count(times), counts)
    np.testing.assert_array_equal(grid.count(times.copy(), scratch=True), counts)


def plain_availability(
    intended: np.ndarray, acked: np.ndarray, duration_ms: float, bucket_ms: float
) -> list[list[float]]:
    """Windows of buckets of the measured phase where something was sent and nothing acked."""
    n_buckets = max(1, math.ceil(duration_ms / bucket_ms))
    inside = (intended >= 0) & (intended < duration_ms)
    bucket = np.floor(intended[inside] / bucket_ms).astype(np.int64)
    sent = np.bincount(bucket, minlength=n_buckets)[:n_buckets]
    answered = np.bincount(bucket[acked[inside]], minlength=n_buckets)[:n_buckets]
    windows: list[list[float]] = []
    for b in np.flatnonzero((sent > 0) & (answered == 0)).tolist():
        begin, end = float(b * bucket_ms), float(min((b + 1) * bucket_ms, duration_ms))
        if windows and windows[-1][1] == begin:
            windows[-1][1] = end
        else:
            windows.append([begin, end])
    return windows


@settings(deadline=None)
@given(
    times=TIMES,
    seed=st.integers(0, 2**16),
    duration_ms=st.sampled_from([1000.0, 1050.0, 0.3]),
    bucket_ms=st.sampled_from([100.0, 0.1, 7.0]),
)
def test_unavailable_windows_follow_the_plain_definition(
    times: np.ndarray, seed: int, duration_ms: float, bucket_ms: float
):
    acked = np.random.default_rng(seed).random(times.size) < 0.5
    found = checker._availability(times, acked, duration_ms, bucket_ms)
    assert found["unavailable_windows"] == plain_availability(times, acked, duration_ms, bucket_ms)
