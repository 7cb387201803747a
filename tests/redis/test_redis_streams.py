"""Streams with a consumer group: PEL, XACK, XAUTOCLAIM, MAXLEN ~ trimming (Redis model II).

Small sizes: 500 XADD/s, consumers processing 5 ms per entry (200 entries/s each), a few
seconds. Counts below are exact mechanisms (a batch, a node of 100 entries), not statistics.
"""

from __future__ import annotations

from typing import Any

from redis_support import run_redis, spec

STREAM: dict[str, Any] = {"workload": "stream", "ops": {"xautoclaim_min_idle_ms": 1000}}
SLOW = {"consumers": 2, "processing_ms": 5.0, "rate_per_s": 500.0}  # 400/s < 500/s: batches fill


def _m(result: Any) -> dict[str, Any]:
    return result.summary["messages"]


def test_a_consumer_group_processes_every_entry_exactly_once_without_faults() -> None:
    w = {"consumers": 3, "processing_ms": 1.0, "rate_per_s": 600.0}
    m = _m(run_redis(spec(redis=STREAM, workload=w, duration_s=1.5)))
    assert m["delivered"] == m["produced"] > 700
    assert m["lost"] == 0 and m["duplicates"] == 0


def test_consumer_crash_before_xack_is_claimed_and_redelivered_not_lost() -> None:
    faults = [{"at_s": 1.0, "kind": "crash", "target": "a_consumer", "duration_s": 5.0}]
    m = _m(run_redis(spec(redis=STREAM, workload=SLOW, duration_s=3.0, faults=faults)))
    # the crashed consumer had processed part of its batch (COUNT 10) without XACK: another
    # consumer claims the whole batch after min-idle-time and processes it again
    dups = m["duplicates_by_cause"].get("claimed_pending_entry", 0)
    assert 1 <= dups <= 10
    assert m["lost"] == 0
    assert m["delivered"] == m["produced"]


def test_maxlen_trimming_with_a_slow_group_loses_unread_entries() -> None:
    w = {"consumers": 1, "processing_ms": 1.0, "rate_per_s": 2000.0}
    faults = [{"at_s": 0.5, "kind": "slow_consumer", "target": "consumers", "factor": 5.0}]
    trimmed = {**STREAM, "ops": {**STREAM["ops"], "stream_maxlen": 1000}}
    lost = _m(run_redis(spec(redis=trimmed, workload=w, duration_s=2.0, faults=faults)))
    kept = _m(run_redis(spec(redis=STREAM, workload=w, duration_s=2.0, faults=faults)))
    # 5x slower the group reads 200/s of 2000/s: the unread tail passes 1000 entries and
    # MAXLEN ~ drops the oldest nodes of 100 before the group reaches them
    assert lost["lost_by_cause"].get("trimmed_before_read", 0) >= 100
    assert kept["lost"] == 0 and kept["delivered"] == kept["produced"]


def test_several_consumers_in_a_group_give_no_per_key_order() -> None:
    w = {"consumers": 3, "processing_ms": 5.0, "rate_per_s": 500.0, "keys": 10}
    m = _m(run_redis(spec(redis=STREAM, workload=w, duration_s=2.0)))
    assert m["out_of_order"] > 0
    one = _m(run_redis(spec(redis=STREAM, workload={**w, "consumers": 1, "processing_ms": 1.0})))
    assert one["out_of_order"] == 0


def test_pubsub_loses_what_a_dead_subscriber_missed_the_stream_group_loses_none() -> None:
    faults = [{"at_s": 1.0, "kind": "crash", "target": "a_consumer", "duration_s": 1.0}]
    w = {"consumers": 1, "processing_ms": 1.0, "rate_per_s": 500.0}
    pubsub = _m(run_redis(spec(redis={"workload": "pubsub"}, workload=w, faults=faults)))
    stream = _m(run_redis(spec(redis=STREAM, workload=w, faults=faults)))
    assert pubsub["lost_by_cause"].get("pubsub_not_connected", 0) > 0.8 * 500 * 1.0
    assert stream["lost"] == 0 and stream["delivered"] == stream["produced"]
