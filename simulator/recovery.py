"""Per fault: time to detection, to the first acknowledged write, to p99 and lag recovery.

A metric is recovered at the start of the first bucket after the fault from which `hold_buckets`
consecutive buckets with at least `min_samples` samples stay at or below
max(baseline x recovery_factor, baseline + recovery_floor_ms); "not_recovered" is a valid answer.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.buckets import BucketLatency, Grid, gauge_by_bucket

if TYPE_CHECKING:
    from simulator.context import RunContext

NOT_RECOVERED = "not_recovered"
LAG_GAUGE = "consumer_lag"
DETECTION_KINDS = (
    "failure_detected",
    "leader_elected",
    "failover",
    "sdown",
    "odown",
    "broker_fenced",
    "isr_shrink",
    "rebalance",
    "connection_reset",
)


def _number(value: Any) -> float | None:
    """A plain float for JSON, None for NaN / infinity."""
    value = float(value)
    return value if math.isfinite(value) else None


def _first_recovered(
    grid: Grid, begin_ms: float, level: np.ndarray, usable: np.ndarray, threshold: float, hold: int
) -> float | str:
    """Time from `begin_ms` to the start of the first of `hold` usable buckets all <= threshold."""
    candidates = np.flatnonzero((grid.starts >= begin_ms) & usable)
    good = (level[candidates] <= threshold).astype(np.int64)
    if good.size < hold:
        return NOT_RECOVERED
    held = np.convolve(good, np.ones(hold, dtype=np.int64), mode="valid") == hold
    if not held.any():
        return NOT_RECOVERED
    return float(grid.starts[candidates[int(np.argmax(held))]] - begin_ms)


def _threshold(baseline: float, spec: Any) -> float:
    return max(baseline * spec.recovery_factor, baseline + spec.recovery_floor_ms)


class _Recovery:
    """Per-bucket p99 latency and consumer lag against their pre-fault level."""

    def __init__(self, ctx: RunContext, grid: Grid, latency: BucketLatency):
        self.grid, self.spec, self.latency = grid, ctx.spec.checker, latency
        self.lag = ctx.gauges.get(LAG_GAUGE)
        if self.lag is not None:
            self.lag_times = np.asarray(self.lag[0], dtype=np.float64)
            self.lag_values = np.asarray(self.lag[1], dtype=np.float64)
            self.lag_level = gauge_by_bucket(grid, *self.lag)[1]

    def p99_after(self, begin_ms: float) -> float | str | None:
        grid, lat = self.grid, self.latency
        enough = lat.samples >= self.spec.min_samples
        before = (grid.starts >= 0) & (grid.starts + grid.bucket_ms <= begin_ms) & enough
        intended = lat.intended
        pre = (intended >= 0) & (intended < begin_ms)
        pooled = pre & (lat.bucket >= 0) & before[np.maximum(lat.bucket, 0)]
        samples = lat.values[pooled] if pooled.any() else lat.values[pre]
        if samples.size == 0:
            return None
        threshold = _threshold(float(np.percentile(samples, 99)), self.spec)
        return _first_recovered(grid, begin_ms, lat.p99, enough, threshold, self.spec.hold_buckets)

    def lag_after(self, begin_ms: float) -> float | str | None:
        if self.lag is None:
            return None
        pre = (self.lag_times >= 0) & (self.lag_times < begin_ms)
        if not pre.any():
            return None
        threshold = _threshold(float(np.percentile(self.lag_values[pre], 99)), self.spec)
        usable = ~np.isnan(self.lag_level)
        return _first_recovered(
            self.grid, begin_ms, self.lag_level, usable, threshold, self.spec.hold_buckets
        )


def faults_summary(
    ctx: RunContext, grid: Grid, acked: np.ndarray, latency: BucketLatency
) -> list[dict[str, Any]]:
    """Per fault: time to detection, to the first acknowledged write, to p99 and lag recovery."""
    if not ctx.faults:
        return []
    history = ctx.history
    recovery = _Recovery(ctx, grid, latency)
    detections = np.sort([e.t_ms for e in ctx.events if e.kind in DETECTION_KINDS])
    # earliest acknowledgement among messages intended at or after each time: a suffix minimum
    intended = history.intended_ms
    in_order = intended.size < 2 or bool((intended[1:] >= intended[:-1]).all())
    order = None if in_order else np.argsort(intended, kind="stable")
    by_intended = intended if order is None else intended[order]
    ack_sorted = np.where(acked, history.ack_latency_ms, np.inf) + intended
    if order is not None:
        ack_sorted = ack_sorted[order]
    # suffix minimum, in place
    np.minimum.accumulate(ack_sorted[::-1], out=ack_sorted[::-1])
    earliest_ack = ack_sorted
    out = []
    for fault in ctx.faults:
        begin = float(fault.begin_ms)
        i = int(np.searchsorted(detections, begin, side="left"))
        detect = float(detections[i] - begin) if i < detections.size else None
        j = int(np.searchsorted(by_intended, begin, side="left"))
        first_write = _number(earliest_ack[j] - begin) if j < by_intended.size else None
        out.append(
            {
                "index": int(fault.index),
                "kind": fault.kind,
                "target": fault.target,
                "nodes": list(fault.nodes),
                "begin_ms": begin,
                "end_ms": None if fault.end_ms is None else float(fault.end_ms),
                "detect_ms": detect,
                "first_write_ms": first_write,
                "p99_recovery_ms": recovery.p99_after(begin),
                "lag_recovery_ms": recovery.lag_after(begin),
            }
        )
    return out
