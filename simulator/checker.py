"""The fate of every message, duplicates, order, latency, availability and recovery per fault.

`check(ctx)` is a pure function of what the run recorded (history, events, faults, gauges): it
never looks inside a model (DESIGN rule 2), and everything is vectorized over message ids, so a
run with millions of messages costs a few sorts. The vocabulary is Jepsen's, extended; every key
of the summary is described in docs/checker.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simulator import history as hist
from simulator.buckets import BucketLatency, Grid, gauge_by_bucket
from simulator.recovery import faults_summary

if TYPE_CHECKING:
    from simulator.context import RunContext
    from simulator.history import History

FATES = ("delivered", "lost", "skipped", "superseded", "failed", "indeterminate", "in_flight")
DELIVERED, LOST, SKIPPED, SUPERSEDED, FAILED, INDETERMINATE, IN_FLIGHT = range(len(FATES))
_CATEGORY_FATE = {hist.LOST: LOST, hist.SKIPPED: SKIPPED, hist.SUPERSEDED: SUPERSEDED}

# Events by which the system (or its clients) notices a fault: the first one after a fault's
# begin gives its detection time.
_CHUNK = 1 << 20  # messages per step of chunked loops (bounded temporaries)
LATENCY_QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))
TIMESERIES_COLUMNS = (
    "t_ms",
    "produced",
    "acked",
    "delivered",
    "failed",
    "ack_p50",
    "ack_p99",
    "e2e_p50",
    "e2e_p99",
)


@dataclass
class Checked:
    """What the checker made of one run: summary, fate per id, tidy tables."""

    summary: dict[str, Any]
    fates: np.ndarray  # np.int8 codes into FATES, one per message id
    timeseries: pd.DataFrame
    events: pd.DataFrame
    faults: pd.DataFrame
    build_messages: Callable[[], pd.DataFrame]  # one row per message; built on demand
    bucket_ms: float


def auto_bucket_ms(duration_ms: float) -> float:
    """The smallest 1-2-5 step that cuts the measured phase into at most ~300 buckets."""
    for exponent in range(16):
        for mantissa in (1, 2, 5):
            step = mantissa * 10**exponent
            if duration_ms / step <= 300:
                return float(step)
    return float(10**16)


def classify(history: History) -> np.ndarray:
    """One fate code per message id (see the table in docs/checker.md)."""
    return _classify(history, history.deliveries > 0)


def _classify(history: History, delivered: np.ndarray) -> np.ndarray:
    status, cause = history.status, history.cause
    fate = np.full(history.n, IN_FLIGHT, dtype=np.int8)  # acked or pending, nothing else known
    np.putmask(fate, status == hist.FAILED, FAILED)
    np.putmask(fate, status == hist.INDETERMINATE, INDETERMINATE)
    # whole-array masks (a byte per message) rather than index arrays: in a key-value run most
    # messages are superseded, and their indices would take 8 bytes each
    category = _cause_category_lut(cause)[cause]  # -1: no cause
    # lost needs an acknowledgement: an unacknowledged message that vanished keeps its status
    # fate
    np.putmask(fate, (category == LOST) & (status == hist.ACKED), LOST)
    np.putmask(fate, category == SKIPPED, SKIPPED)
    np.putmask(fate, category == SUPERSEDED, SUPERSEDED)
    np.putmask(fate, delivered, DELIVERED)
    return fate


def check(ctx: RunContext) -> Checked:
    """Turn the raw facts of a finished run into fates, statistics and tables."""
    spec = ctx.spec.checker
    history = ctx.history
    duration_ms = float(ctx.duration_ms)
    bucket_ms = float(spec.bucket_ms) if spec.bucket_ms > 0 else auto_bucket_ms(duration_ms)
    delivered = history.deliveries > 0
    fates = _classify(history, delivered)
    # a comparison per fate: cheaper than bincount's copy of every code to a machine integer
    counts = np.array([np.count_nonzero(fates == f) for f in range(len(FATES))], dtype=np.int64)
    if int(counts.sum()) != history.n:
        raise AssertionError(f"fates add up to {int(counts.sum())}, not {history.n} produced")

    intended = history.intended_ms
    # latency from the intended send time (no coordinated omission); NaN where there is none.
    # The history keeps them as float32 views: no per-message copies here.
    ack_latency = history.ack_latency_ms
    e2e_latency = history.deliver_latency_ms
    acked = (history.status == hist.ACKED) & ~np.isnan(ack_latency)
    grid = Grid.covering(ctx, bucket_ms)
    intended_bucket = grid.bucket_of(intended)  # 2 bytes a message, shared by what follows
    percents = [100 * q for _, q in LATENCY_QUANTILES]
    ack_buckets = BucketLatency(grid, intended, ack_latency, intended_bucket, percents)
    e2e_buckets = BucketLatency(grid, intended, e2e_latency, intended_bucket, percents)
    # answers and deliveries per bucket, and in the measured phase, in one pass each
    ack_counts = _answer_counts(grid, intended, ack_latency, duration_ms)
    delivered_counts = _answer_counts(grid, intended, e2e_latency, duration_ms)
    summary: dict[str, Any] = {
        "messages": _message_counts(history, fates, counts, delivered),
        "latency_ms": {"ack": _stats(ack_buckets), "end_to_end": _stats(e2e_buckets)},
        "throughput": _throughput(history, duration_ms, ack_counts[1], delivered_counts[1]),
        "availability": _availability(intended, acked, duration_ms, bucket_ms),
        "faults": faults_summary(ctx, grid, acked, ack_buckets if acked.any() else e2e_buckets),
        "sim_events": len(ctx.events),
        "duration_s": duration_ms / 1000.0,
        "bucket_ms": bucket_ms,
    }
    return Checked(
        summary=summary,
        fates=fates,
        timeseries=_timeseries(
            fates,
            counts,
            ctx.gauges,
            grid,
            intended_bucket,
            (ack_counts[0], delivered_counts[0]),
            ack_buckets,
            e2e_buckets,
        ),
        events=events_frame(ctx.events),
        faults=faults_frame(ctx.faults),
        build_messages=_messages_builder(history, fates),
        bucket_ms=bucket_ms,
    )


# fates and counts ------------------------------------------------------------------------------
def _cause_category_lut(cause: np.ndarray) -> np.ndarray:
    """cause code -> fate code of its category (-1 for no cause)."""
    size = max(max(hist.CAUSES, default=0), int(cause.max(initial=0))) + 1
    lut = np.full(size, -1, dtype=np.int8)
    for code, (category, _) in hist.CAUSES.items():
        lut[code] = _CATEGORY_FATE[category]
    return lut


# bincount converts its input to 8-byte integers: counting in slices bounds that copy
_COUNT_SLICE = 1 << 20


def _by_cause(cause: np.ndarray, fates: np.ndarray, fate: int) -> dict[str, int]:
    """Counts per cause name of the messages with `fate`, sorted by name (codes are only stable
    within one process)."""
    found = np.zeros(max(hist.CAUSES, default=0) + 1, dtype=np.int64)
    for start in range(0, cause.size, _COUNT_SLICE):
        stop = start + _COUNT_SLICE
        codes = cause[start:stop][fates[start:stop] == fate]
        if codes.size:
            found += np.bincount(codes, minlength=found.size)
    named = {hist.CAUSES[c][1]: int(found[c]) for c in np.flatnonzero(found).tolist() if c != 0}
    return dict(sorted(named.items()))


def _message_counts(
    history: History, fates: np.ndarray, counts: np.ndarray, delivered: np.ndarray
) -> dict[str, Any]:
    status, cause = history.status, history.cause
    duplicates = dict(sorted((str(k), int(v)) for k, v in history.duplicates_by_cause.items() if v))

    def by_cause(fate: int) -> dict[str, int]:
        return _by_cause(cause, fates, fate) if counts[fate] else {}

    return {
        "produced": int(history.n),
        "acked": int(np.count_nonzero(status == hist.ACKED)),
        "delivered": int(counts[DELIVERED]),
        "lost": int(counts[LOST]),
        "lost_by_cause": by_cause(LOST),
        "skipped": int(counts[SKIPPED]),
        "skipped_by_cause": by_cause(SKIPPED),
        "superseded": int(counts[SUPERSEDED]),
        "superseded_by_cause": by_cause(SUPERSEDED),
        "failed": int(counts[FAILED]),
        "indeterminate": int(counts[INDETERMINATE]),
        "in_flight": int(counts[IN_FLIGHT]),
        "duplicates": int(sum(duplicates.values())),
        "duplicates_by_cause": duplicates,
        "out_of_order": int(history.out_of_order),
        "anomalies": {
            "failed_but_delivered": int(np.count_nonzero((status == hist.FAILED) & delivered)),
            "indeterminate_but_delivered": int(
                np.count_nonzero((status == hist.INDETERMINATE) & delivered)
            ),
            "resurrected": int(history.resurrected),
            "in_flight": int(counts[IN_FLIGHT]),
        },
    }


# statistics ------------------------------------------------------------------------------------
def _number(value: Any) -> float | None:
    """A plain float for JSON, None for NaN / infinity."""
    value = float(value)
    return value if math.isfinite(value) else None


def _stats(samples: BucketLatency) -> dict[str, float | None]:
    """Latency percentiles (numpy's linear interpolation), max and mean; None without samples."""
    keys = [name for name, _ in LATENCY_QUANTILES] + ["max", "mean"]
    latency = samples.values
    if latency.size == 0 or samples.percentiles is None:
        return dict.fromkeys(keys)
    values = [*samples.percentiles, latency.max(), latency.mean()]
    return {k: _number(v) for k, v in zip(keys, values, strict=True)}


def _in_measured_phase(times: np.ndarray, duration_ms: float) -> int:
    return int(np.count_nonzero((times >= 0) & (times < duration_ms)))


def _answer_counts(
    grid: Grid, intended: np.ndarray, latency: np.ndarray, duration_ms: float
) -> tuple[np.ndarray, int]:
    """(count per grid bucket, count in the measured phase) of the times `intended + latency`."""
    per_bucket = np.zeros(grid.n, dtype=np.int64)
    measured = 0
    for start in range(0, intended.size, _CHUNK):  # in chunks: no per-message copy
        times = intended[start : start + _CHUNK] + latency[start : start + _CHUNK]
        measured += _in_measured_phase(times, duration_ms)
        per_bucket += grid.count(times, scratch=True)
    return per_bucket, measured


def _throughput(
    history: History, duration_ms: float, acked: int, delivered: int
) -> dict[str, float]:
    """Rates over the measured phase [0, duration); `acked`, `delivered`: counts in it."""
    offered = _in_measured_phase(history.intended_ms, duration_ms)
    return {
        "offered_per_s": offered / (duration_ms / 1000.0),
        "acked_per_s": acked / (duration_ms / 1000.0),
        "delivered_per_s": delivered / (duration_ms / 1000.0),
    }


def _availability(
    intended: np.ndarray, acked: np.ndarray, duration_ms: float, bucket_ms: float
) -> dict[str, Any]:
    """Buckets of the measured phase where messages were sent and none of them was acknowledged."""
    n_buckets = max(1, math.ceil(duration_ms / bucket_ms))
    # counts per 2 x bucket + acknowledged; times outside the phase go to bucket n_buckets, as
    # does a time whose quotient rounds up to it: both dropped
    counts = np.zeros(2 * n_buckets + 2, dtype=np.int64)
    for start in range(0, intended.size, _CHUNK):  # in chunks: no per-message temporaries
        times = intended[start : start + _CHUNK]
        inside = (times >= 0) & (times < duration_ms)
        outside = np.logical_not(inside, out=inside)  # (in place: one mask)
        bucket = np.divide(times, bucket_ms)
        np.floor(bucket, out=bucket)
        np.copyto(bucket, n_buckets, where=outside)
        bucket *= 2
        bucket += acked[start : start + _CHUNK]
        counts += np.bincount(bucket.astype(np.intp), minlength=counts.size)
    answered = counts[1 : 2 * n_buckets : 2]
    sent = counts[0 : 2 * n_buckets : 2] + answered
    down = (sent > 0) & (answered == 0)
    edges = np.diff(np.concatenate(([0], down.astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    windows = [
        [float(a * bucket_ms), float(min(b * bucket_ms, duration_ms))]
        for a, b in zip(starts, stops, strict=True)
    ]
    return {
        "unavailable_s": sum(end - begin for begin, end in windows) / 1000.0,
        "unavailable_windows": windows,
    }


def _timeseries(
    fates: np.ndarray,
    counts: np.ndarray,
    gauges: dict[str, Any],
    grid: Grid,
    intended_bucket: np.ndarray,
    answered: tuple[np.ndarray, np.ndarray],
    ack: BucketLatency,
    e2e: BucketLatency,
) -> pd.DataFrame:
    """`answered`: acknowledgements and deliveries per bucket."""
    failed = (
        grid.count_buckets(intended_bucket, fates == FAILED)
        if counts[FAILED]
        else np.zeros(grid.n, dtype=np.int64)
    )
    # with a sample per message, the samples per bucket are the messages produced in it
    every = ack if ack.every else e2e if e2e.every else None
    columns: dict[str, Any] = {
        "t_ms": grid.starts,
        "produced": grid.count_buckets(intended_bucket) if every is None else every.samples,
        "acked": answered[0],
        "delivered": answered[1],
        "failed": failed,
        "ack_p50": ack.p50,
        "ack_p99": ack.p99,
        "e2e_p50": e2e.p50,
        "e2e_p99": e2e.p99,
    }
    for name in sorted(gauges):
        times, values = gauges[name]
        column = name if name not in columns else f"gauge:{name}"
        columns[column] = gauge_by_bucket(grid, times, values)[0]
    return pd.DataFrame(columns)


# tables ----------------------------------------------------------------------------------------
def events_frame(events: list[Any]) -> pd.DataFrame:
    """One row per recorded event; `detail` as a JSON string (sorted keys)."""
    return pd.DataFrame(
        {
            "t_ms": np.array([e.t_ms for e in events], dtype=np.float64),
            "kind": pd.Series([e.kind for e in events], dtype="string"),
            "node": pd.Series([e.node for e in events], dtype="string"),
            "detail": pd.Series(
                [json.dumps(e.detail, sort_keys=True, default=str) for e in events], dtype="string"
            ),
        }
    )


def faults_frame(faults: list[Any]) -> pd.DataFrame:
    """One row per injected fault; `nodes` comma-separated, `end_ms` NaN until the final heal."""
    return pd.DataFrame(
        {
            "index": np.array([f.index for f in faults], dtype=np.int64),
            "kind": pd.Series([f.kind for f in faults], dtype="string"),
            "target": pd.Series([f.target for f in faults], dtype="string"),
            "nodes": pd.Series([",".join(f.nodes) for f in faults], dtype="string"),
            "begin_ms": np.array([f.begin_ms for f in faults], dtype=np.float64),
            "end_ms": np.array(
                [np.nan if f.end_ms is None else f.end_ms for f in faults], dtype=np.float64
            ),
            "source": pd.Series([f.source for f in faults], dtype="string"),
        }
    )


def _messages_builder(history: History, fates: np.ndarray) -> Callable[[], pd.DataFrame]:
    """A function building the per-message table (categoricals keep millions of rows small)."""
    key, intended, deliveries = history.key, history.intended_ms, history.deliveries
    status, cause = history.status, history.cause

    def build() -> pd.DataFrame:
        # absolute times are computed here, not when the run is checked: 16 bytes a message
        ack_ms, deliver_ms = history.ack_ms, history.deliver_ms
        present = [int(c) for c in np.flatnonzero(np.bincount(cause, minlength=1)) if c != 0]
        names = sorted(hist.CAUSES[c][1] for c in present)
        categories = ["", *names]
        lut = np.zeros(max(present, default=0) + 1, dtype=np.int16)
        for c in present:
            lut[c] = categories.index(hist.CAUSES[c][1])
        return pd.DataFrame(
            {
                "id": np.arange(status.size, dtype=np.int64),
                "key": key,
                "intended_ms": intended,
                "ack_ms": ack_ms,
                "deliver_ms": deliver_ms,
                "deliveries": deliveries,
                "status": pd.Categorical.from_codes(status, categories=list(hist.STATUS_NAMES)),
                "fate": pd.Categorical.from_codes(fates, categories=list(FATES)),
                "cause": pd.Categorical.from_codes(lut[cause], categories=categories),
            }
        )

    return build
