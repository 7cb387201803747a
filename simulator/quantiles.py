"""Order statistics and percentiles of many latencies, exact, by counting instead of sorting.

`percentiles` equals `np.percentile` (linear interpolation) and `grouped_quantiles` gives the
same per group, bit for bit (tests/unit/test_order_statistics.py holds them equal to numpy).
"""

from __future__ import annotations

import numpy as np

CHUNK = 1 << 20  # elements per step of the chunked loops (bounded temporaries)


# Order statistics by counting: a float32 >= 0 orders like its bits, so counting values in
# cells of (group, leading bits) and sorting only the few values in the cells that hold the
# wanted ranks gives exactly the values a sort (or np.partition) would put at those ranks.
_COUNTING_MIN = 1 << 14  # fewer values: partitioning is as fast
_MAX_CELLS = 1 << 18  # 2 MB of counts
_SORT_AT_MOST = 1 << 14  # values in the wanted cells sorted at most, beyond 1/16 of all
_FLOAT32_INF_BITS = 0x7F800000


class _Cells:
    """Values counted per (group, leading bits) cell; `None` from `of` when not applicable.

    The cell of each value is computed again when needed, never kept: 4 bytes a value of fresh
    memory cost more to map than the few operations that compute them.
    """

    def __init__(
        self,
        bits: np.ndarray,
        groups: np.ndarray | None,
        n_groups: int,
        low: int,
        high: int,
        shift: int,
        chunk: int = CHUNK,
    ):
        """Count `bits` (of float32 values >= 0, lowest `low`, highest `high`) per cell."""
        self.bits, self.groups, self.shift = bits, groups, shift
        self.base = low >> shift  # leading bits of the lowest value
        self.width = (high >> shift) - self.base + 1
        self.low = low if shift == 0 else -1  # when every cell holds one value; else -1
        self.counts = np.zeros(n_groups * self.width, dtype=np.int64)
        for start in range(0, bits.size, chunk):
            self.counts += np.bincount(self.cells(start, start + chunk), minlength=self.counts.size)
        self.per_group = self.counts.reshape(n_groups, self.width).sum(axis=1)

    def cells(self, start: int, stop: int) -> np.ndarray:
        """Cell of the values start .. stop - 1: group x width + leading bits above the lowest."""
        key = np.right_shift(self.bits[start:stop], np.uint32(self.shift)).view(np.int32)
        key -= np.int32(self.base)
        if self.groups is not None:
            key += self.groups[start:stop].astype(np.int32) * np.int32(self.width)
        return key

    @classmethod
    def of(
        cls, values: np.ndarray, groups: np.ndarray | None, n_groups: int, chunk: int = CHUNK
    ) -> _Cells | None:
        """Count `values` (float32, >= 0, no NaN or -0.0) per group (0 .. n_groups - 1)."""
        if values.dtype != np.float32 or values.size == 0 or not values.flags.c_contiguous:
            return None
        if groups is not None and (int(groups.min()) < 0 or int(groups.max()) >= n_groups):
            return None
        bits = values.view(np.uint32)
        low, high = int(bits.min()), int(bits.max())
        if high > _FLOAT32_INF_BITS:  # a sign bit (negative or -0.0) or NaN
            return None
        shift = 0
        while n_groups * ((high >> shift) - (low >> shift) + 1) > _MAX_CELLS:
            shift += 1
            if shift > 32:
                return None
        return cls(bits, groups, n_groups, low, high, shift, chunk)

    def at_ranks(
        self, ranks: np.ndarray, overall: np.ndarray | None = None, chunk: int = CHUNK
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Values at `ranks` of the (group, value) order, and at `overall` ranks of the value
        order of all groups together; either None if too many values would need sorting."""
        n_groups, width = self.per_group.size, self.width
        ends = np.cumsum(self.counts)
        cell = np.searchsorted(ends, ranks, side="right")
        columns = self.counts.reshape(n_groups, width).sum(axis=0)  # counts per leading bits
        column_ends = np.cumsum(columns)
        column = np.searchsorted(column_ends, [] if overall is None else overall, side="right")
        if self.low >= 0:  # a cell per value: the cell says the value

            def value(of: np.ndarray) -> np.ndarray:
                return (of + self.low).astype(np.uint32).view(np.float32)

            return value(cell % width), None if overall is None else value(column)
        cells = np.unique(cell)
        # a few cells hold most values (many equal ones): partition instead
        grouped = int(self.counts[cells].sum()) <= max(_SORT_AT_MOST, self.bits.size // 16)
        wanted_columns = np.unique(column)
        # the values of the wanted columns are counted again, finer: a quarter of all at most
        recount = int(columns[wanted_columns].sum())
        across = overall is not None and recount <= max(_SORT_AT_MOST, self.bits.size // 4)
        wanted = np.zeros((n_groups, width), dtype=bool)
        wanted.reshape(-1)[cells] = grouped
        wanted[:, wanted_columns] = across
        if not (grouped or across):
            return None, None
        keys, bits = [], []
        for start in range(0, self.bits.size, chunk):  # one pass over all values for both
            key = self.cells(start, start + chunk)
            at = np.flatnonzero(wanted.reshape(-1)[key])
            keys.append(key[at])
            bits.append(self.bits[start : start + chunk][at])
        key, bit = np.concatenate(keys), np.concatenate(bits)
        found = found_overall = None
        if grouped:
            mine = np.zeros(self.counts.size, dtype=bool)
            mine[cells] = True
            picked = mine[key] if across else slice(None)
            ordered = np.sort((key[picked].astype(np.uint64) << np.uint64(32)) | bit[picked])
            ordered_cells = (ordered >> np.uint64(32)).astype(np.int64)
            within = ranks - (ends[cell] - self.counts[cell])
            position = np.searchsorted(ordered_cells, cell, side="left") + within
            found = ordered[position].astype(np.uint32).view(np.float32)
        if across:
            in_column = np.zeros(width, dtype=bool)
            in_column[wanted_columns] = True
            sample = bit[in_column[key % width]].view(np.float32)
            # rank among the values of the wanted columns: those of lower wanted columns first
            lower = np.cumsum(columns[wanted_columns]) - columns[wanted_columns]
            rank = overall - (column_ends[column] - columns[column])
            rank += lower[np.searchsorted(wanted_columns, column)]
            found_overall = order_statistics(sample, rank)
        return found, found_overall


def order_statistics(values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The values at `ranks` of `values` sorted (`values` in any order; NaN last)."""
    cells = _Cells.of(values, None, 1) if values.size >= _COUNTING_MIN else None
    found = None if cells is None else cells.at_ranks(ranks)[0]
    if found is None:
        found = np.partition(values, np.unique(ranks))[ranks]
    return found


def _percentile_ranks(n: int, percents: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(ranks of the lower then the upper neighbours, weights) of np.percentile's linear method.

    These repeat numpy's own steps (`_quantile`, `_get_indexes` in
    numpy/lib/_function_base_impl.py); tests/unit/test_order_statistics.py holds them equal.
    """
    virtual = (n - 1) * np.true_divide(percents, 100)
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= n - 1  # the last value (numpy's index -1)
    previous[above] = -1
    following[above] = -1
    gamma = np.asanyarray(virtual - previous, dtype=virtual.dtype)
    ranks = np.where(np.r_[previous, following] < 0, n - 1, np.r_[previous, following])
    return ranks.astype(np.int64), gamma


def _interpolate(found: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """numpy's `_lerp` between the lower and upper neighbours found at `_percentile_ranks`."""
    a, b = found[: gamma.size], found[gamma.size :]
    diff_b_a = b - a
    result = np.add(a, diff_b_a * gamma)
    np.subtract(
        b,
        diff_b_a * (1 - gamma),
        out=result,
        where=gamma >= 0.5,
        casting="unsafe",
        dtype=type(result.dtype),
    )
    return result


def percentiles(values: np.ndarray, percents: list[float]) -> np.ndarray:
    """`np.percentile(values, percents)` (linear), bit for bit, by counting rather than sorting."""
    cells = _Cells.of(values, None, 1) if values.size >= _COUNTING_MIN else None
    if cells is None:
        return np.percentile(values, percents)
    ranks, gamma = _percentile_ranks(values.size, percents)
    found = cells.at_ranks(ranks)[0]
    if found is None:
        return np.percentile(values, percents)
    return _interpolate(found, gamma)


def grouped_quantiles(
    groups: np.ndarray, values: np.ndarray, n_groups: int, qs: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles of `values` per group (numpy's linear interpolation), never a loop per value.

    Returns (quantiles of shape (len(qs), n_groups), NaN for empty groups; count per group).
    Order statistics come from counting (`_Cells`), else from a stable (radix) sort by group
    and a partial sort of each group: groups are time buckets, a few hundred.
    """
    return grouped_quantiles_and_percentiles(groups, values, n_groups, qs)[:2]


def grouped_quantiles_and_percentiles(
    groups: np.ndarray,
    values: np.ndarray,
    n_groups: int,
    qs: tuple[float, ...],
    percents: list[float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`grouped_quantiles`, and `percentiles(values, percents)` from the same counts if asked
    (None when they cannot be had from them)."""
    overall = None
    cells = _Cells.of(values, groups, n_groups) if values.size >= _COUNTING_MIN else None
    if cells is None:
        counts = np.zeros(n_groups, dtype=np.int64)
        for start in range(0, groups.size, CHUNK):  # bincount copies to intp: in chunks
            counts += np.bincount(groups[start : start + CHUNK], minlength=n_groups)[:n_groups]
    else:
        counts = cells.per_group
    out = np.full((len(qs), n_groups), np.nan)
    if values.size == 0:
        return out, counts, overall
    ends = np.cumsum(counts)
    starts = ends - counts
    has = counts > 0
    first, last = starts[has], ends[has] - 1
    reads = []  # (lower index, upper index, position) of each quantile in every non-empty group
    for q in qs:
        pos = first + q * (counts[has] - 1)
        lo = np.floor(pos).astype(np.int64)
        reads.append((lo, np.minimum(lo + 1, last), pos))
    wanted = np.unique(np.concatenate([np.r_[lo, hi] for lo, hi, _ in reads]))
    found = None
    if cells is not None:
        ranks, gamma = _percentile_ranks(values.size, percents) if percents else (None, None)
        found, overall = cells.at_ranks(wanted, ranks)
        if overall is not None and gamma is not None:
            overall = _interpolate(overall, gamma)
    if found is None:
        ordered = _partially_ordered(groups, values, n_groups, counts, wanted)
        found = ordered[wanted]
    for i, (lo, hi, pos) in enumerate(reads):
        at_lo, at_hi = found[np.searchsorted(wanted, lo)], found[np.searchsorted(wanted, hi)]
        out[i, has] = at_lo + (at_hi - at_lo) * (pos - lo)
    return out, counts, overall


def _partially_ordered(
    groups: np.ndarray, values: np.ndarray, n_groups: int, counts: np.ndarray, wanted: np.ndarray
) -> np.ndarray:
    """`values` grouped, each group partially sorted so the `wanted` ranks hold their values."""
    if groups.size < 2 or bool((groups[1:] >= groups[:-1]).all()):
        # messages are mostly produced in time order: their buckets are already grouped
        ordered = values.copy()
    else:
        narrow = groups.astype(np.uint16) if n_groups <= np.iinfo(np.uint16).max else groups
        ordered = values[np.argsort(narrow, kind="stable")]
    ends = np.cumsum(counts)
    starts = ends - counts
    # only the order statistics the quantiles read are put in place: a partial sort per group
    # (introselect, linear time) gives the same values as a full sort
    several = np.flatnonzero(counts > 1)
    begins, stops = starts[several], ends[several]
    cuts = np.searchsorted(wanted, begins).tolist()
    cut_ends = np.searchsorted(wanted, stops).tolist()
    for begin, end, a, b in zip(begins.tolist(), stops.tolist(), cuts, cut_ends, strict=True):
        if b > a:
            ordered[begin:end].partition(wanted[a:b] - begin)
    return ordered
