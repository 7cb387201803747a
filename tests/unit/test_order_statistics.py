"""Quantiles found by counting equal, bit for bit, the ones numpy's sort or partition gives."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from simulator import quantiles

PERCENTS = [50.0, 95.0, 99.0, 99.9]

# latencies: any float32 >= 0 (zero, subnormals, inf), or a few distinct values (many ties)
SPREAD = st.floats(0, None, width=32, allow_nan=False, allow_subnormal=True)
FEW = st.sampled_from([0.0, 0.5, 1.0, 1.25, 3.0, 1e6])
VALUES = st.integers(1, 400).flatmap(
    lambda n: st.one_of(
        hnp.arrays(np.float32, n, elements=SPREAD),
        hnp.arrays(np.float32, n, elements=FEW),
    )
)
# few cells make cells with many values, many cells make small ones; sorting none of the values
# in the wanted cells falls back to partitioning
CELLS = st.sampled_from([1 << 18, 64, 8])
SORT_AT_MOST = st.sampled_from([1 << 14, 0])
SETTINGS = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def _grouped(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    """(values, their groups (time buckets), number of groups), groups in order or spread."""
    values = draw(VALUES)
    n_groups = draw(st.integers(1, 12))
    groups = (np.arange(values.size) * 7919 % n_groups).astype(np.int16)
    if draw(st.booleans()):
        groups.sort()
    return values, groups, n_groups


GROUPED = _grouped()


@contextlib.contextmanager
def counting(max_cells: int, sort_at_most: int) -> Iterator[None]:
    """Use the counting path whatever the size, with at most `max_cells` cells."""
    with mock.patch.multiple(
        quantiles, _COUNTING_MIN=0, _MAX_CELLS=max_cells, _SORT_AT_MOST=sort_at_most
    ):
        yield


@SETTINGS
@given(values=VALUES, max_cells=CELLS, sort_at_most=SORT_AT_MOST)
def test_percentiles_by_counting_equal_numpys_bit_for_bit(
    values: np.ndarray, max_cells: int, sort_at_most: int
):
    with (
        counting(max_cells, sort_at_most),
        np.errstate(invalid="ignore"),
    ):  # inf - inf, as numpy does
        found = quantiles.percentiles(values, PERCENTS)
    with np.errstate(invalid="ignore"):
        expected = np.percentile(values, PERCENTS)
    assert found.dtype == expected.dtype
    assert found.tobytes() == expected.tobytes()


@SETTINGS
@given(grouped=GROUPED, max_cells=CELLS, sort_at_most=SORT_AT_MOST)
def test_grouped_quantiles_by_counting_equal_partitioning_bit_for_bit(
    grouped: tuple[np.ndarray, np.ndarray, int], max_cells: int, sort_at_most: int
):
    values, groups, n_groups = grouped
    qs = (0.5, 0.99, 0.0, 1.0)
    with counting(max_cells, sort_at_most), np.errstate(invalid="ignore"):
        found, found_counts = quantiles.grouped_quantiles(groups, values, n_groups, qs)
    with mock.patch.object(quantiles, "_COUNTING_MIN", 1 << 62), np.errstate(invalid="ignore"):
        expected, counts = quantiles.grouped_quantiles(groups, values, n_groups, qs)
    np.testing.assert_array_equal(found_counts, counts)
    assert found.tobytes() == expected.tobytes()


def test_values_counting_cannot_order_are_left_to_numpy():
    """A sign bit (negative or -0.0) or NaN breaks the order of the bits: numpy decides."""
    for odd in (-1.0, -0.0, np.nan):
        values = np.r_[np.linspace(0, 5, 99), odd].astype(np.float32)
        with counting(1 << 18, 1 << 14):
            found = quantiles.percentiles(values, PERCENTS)
            grouped, _ = quantiles.grouped_quantiles(np.zeros(100, np.int16), values, 1, (0.5,))
        expected = np.percentile(values, PERCENTS)
        assert found.tobytes() == expected.tobytes()
        assert grouped[0, 0] == expected[0] or np.isnan(expected[0])


@SETTINGS
@given(grouped=GROUPED, max_cells=CELLS, sort_at_most=SORT_AT_MOST)
def test_percentiles_from_the_bucket_counts_equal_numpys_bit_for_bit(
    grouped: tuple[np.ndarray, np.ndarray, int], max_cells: int, sort_at_most: int
):
    """The percentiles of all samples read off the per-bucket counts (a second, finer count of
    the values in the wanted leading bits) equal numpy's, or are left to `percentiles`."""
    values, groups, n_groups = grouped
    with counting(max_cells, sort_at_most), np.errstate(invalid="ignore"):
        out, _, overall = quantiles.grouped_quantiles_and_percentiles(
            groups, values, n_groups, (0.5,), PERCENTS
        )
        expected = np.percentile(values, PERCENTS)
        grouped, _ = quantiles.grouped_quantiles(groups, values, n_groups, (0.5,))
    assert out.tobytes() == grouped.tobytes()
    if overall is not None:
        assert overall.tobytes() == expected.tobytes()


def test_order_statistics_by_counting_equal_sorting():
    rng = np.random.default_rng(3)
    for values in (rng.lognormal(size=50_000), rng.integers(0, 5, 50_000), np.ones(20_000)):
        values = values.astype(np.float32)
        ranks = np.array([0, 1, values.size // 2, values.size - 2, values.size - 1])
        np.testing.assert_array_equal(
            quantiles.order_statistics(values, ranks), np.sort(values)[ranks]
        )
