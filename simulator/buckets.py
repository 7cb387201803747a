"""Time buckets: the grid, latency quantiles per bucket, gauges per bucket (vectorized)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from simulator.quantiles import CHUNK as _CHUNK
from simulator.quantiles import grouped_quantiles_and_percentiles, percentiles

if TYPE_CHECKING:
    from simulator.context import RunContext


@dataclass(frozen=True)
class Grid:
    """Buckets of `bucket_ms` aligned on t = 0, from the warm-up to the last recorded fact."""

    start_ms: float
    bucket_ms: float
    n: int

    @classmethod
    def covering(cls, ctx: RunContext, bucket_ms: float) -> Grid:
        history = ctx.history
        last = [float(ctx.duration_ms)]
        if history.n:
            # an upper bound of the last answer or delivery, without per-message temporaries
            latest = float(np.nanmax(history.intended_ms))
            last.append(latest)
            for lat in (history.ack_latency_ms, history.deliver_latency_ms):
                # fmax skips NaN (nanmax's own reduction); -inf: no latency at all
                longest = float(np.fmax.reduce(lat, initial=-np.inf))
                if longest != -np.inf:
                    last.append(latest + longest)
        last += [e.t_ms for e in ctx.events] + [max(t, default=0.0) for t, _ in ctx.gauges.values()]
        last += [f.end_ms if f.end_ms is not None else f.begin_ms for f in ctx.faults]
        start = math.floor(-float(ctx.warmup_ms) / bucket_ms) * bucket_ms
        return cls(float(start), bucket_ms, math.floor((max(last) - start) / bucket_ms) + 1)

    @property
    def starts(self) -> np.ndarray:
        return self.start_ms + self.bucket_ms * np.arange(self.n)

    def index(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(bucket index of each finite time inside the grid, mask of those times)."""
        raw = np.subtract(times, self.start_ms, dtype=np.float64)
        raw /= self.bucket_ms
        np.floor(raw, out=raw)
        ok = (raw >= 0) & (raw < self.n)  # NaN compares False
        return raw[ok].astype(np.int32), ok

    def bucket_of(self, times: np.ndarray, chunk: int = _CHUNK) -> np.ndarray:
        """Bucket of every time, -1 outside the grid or NaN; int16 when the grid allows.

        Computed in chunks, so its float temporaries stay small: 2 bytes a message in all.
        """
        dtype = np.int16 if self.n < np.iinfo(np.int16).max else np.int32
        out = np.empty(times.size, dtype=dtype)
        for start in range(0, times.size, chunk):
            raw = self._quotients(times[start : start + chunk], -1.0)
            out[start : start + raw.size] = raw  # truncation: the floor of what is >= 0
        return out

    def _quotients(
        self, times: np.ndarray, fill: float, out: np.ndarray | None = None
    ) -> np.ndarray:
        """(time - start) / bucket (float64, into `out` if given), `fill` where its floor is no
        bucket (NaN included).

        The floor of x is in [0, n) exactly when x is (n is an integer), so the floor is never
        needed: what is inside is >= 0, where truncating to an integer is the floor.
        """
        raw = np.subtract(times, self.start_ms, out=out, dtype=np.float64)
        raw /= self.bucket_ms
        outside = (raw >= 0) & (raw < self.n)  # NaN compares False
        np.logical_not(outside, out=outside)
        np.copyto(raw, fill, where=outside)
        return raw

    def count_buckets(
        self, buckets: np.ndarray, where: np.ndarray | None = None, chunk: int = _CHUNK
    ) -> np.ndarray:
        """Counts per bucket of `bucket_of` indices (-1 skipped), optionally only `where`."""
        total = np.zeros(self.n + 1, dtype=np.int64)
        for start in range(0, buckets.size, chunk):
            part = buckets[start : start + chunk]
            if where is not None:
                part = part[where[start : start + chunk]]
            total += np.bincount(part.astype(np.intp) + 1, minlength=self.n + 1)
        return total[1:]

    def count(self, times: np.ndarray, scratch: bool = False) -> np.ndarray:
        """Count per bucket of `times` (outside the grid or NaN skipped).

        `scratch`: `times` (float64) is not needed afterwards and may be overwritten.
        """
        own = scratch and times.dtype == np.float64 and times.flags.writeable
        # what is outside goes to an extra bucket n, counted apart and dropped
        raw = self._quotients(times, float(self.n), out=times if own else None)
        return np.bincount(raw.astype(np.intp), minlength=self.n + 1)[: self.n].copy()


class BucketLatency:
    """Latency samples bucketed by intended send time, with p50 and p99 per bucket.

    Keeps the finite latencies (4 bytes each), their bucket (2 bytes) and a mask (1 byte), or
    views of the history's when every latency is finite; intended times are read back from the
    history only when a fault needs them.
    """

    def __init__(
        self,
        grid: Grid,
        intended: np.ndarray,
        latency: np.ndarray,
        intended_bucket: np.ndarray | None = None,
        percents: list[float] | None = None,
    ):
        """`intended_bucket`: `grid.bucket_of(intended)` if the caller has it (shared);
        `percents`: also `percentiles` of all samples, from the same counts when possible."""
        self.finite = ~np.isnan(latency)
        self._intended = intended
        if intended_bucket is None:
            intended_bucket = grid.bucket_of(intended)
        # every message answered (the common case): views, not copies; nobody writes to them
        self.every = np.count_nonzero(self.finite) == latency.size  # a sample per message
        self.values = latency if self.every else latency[self.finite]
        # bucket of each sample, -1 outside the grid
        self.bucket = intended_bucket if self.every else intended_bucket[self.finite]
        inside = self.bucket >= 0
        every_inside = bool(inside.all())
        if every_inside:
            bucket, values = self.bucket, self.values
        else:
            bucket, values = self.bucket[inside], self.values[inside]
        # the percentiles of all samples come with the per-bucket ones if all are in buckets
        (self.p50, self.p99), self.samples, overall = grouped_quantiles_and_percentiles(
            bucket, values, grid.n, (0.5, 0.99), percents if every_inside else None
        )
        if overall is None and percents and self.values.size:
            overall = percentiles(self.values, percents)
        self.percentiles = overall  # None without samples or percents

    @functools.cached_property
    def intended(self) -> np.ndarray:
        """Intended send times of the samples (a copy unless all: only for per-fault baselines)."""
        return self._intended if self.every else self._intended[self.finite]


def gauge_by_bucket(grid: Grid, times: list[float], values: list[float]) -> tuple[np.ndarray, ...]:
    """(last value per bucket forward-filled, max per bucket with empty buckets at the held value)."""
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    bucket, ok = grid.index(t[order])
    v = v[order][ok]
    last = np.full(grid.n, np.nan)
    peak = np.full(grid.n, np.nan)
    if bucket.size:
        final = np.r_[bucket[1:] != bucket[:-1], True]
        last[bucket[final]] = v[final]
        np.fmax.at(peak, bucket, v)
    held = pd.Series(last).ffill().to_numpy()
    return held, np.where(np.isnan(peak), held, peak)
