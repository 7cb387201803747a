"""Streams and lists on a replicated master: Sentinel failover, lag-window loss, redelivery.

Setup: 1000 XADD/s from 4 producers; a group of 2 consumers processing 5 ms an entry (400/s),
so the group falls behind and the newest entries are unread when the master loses power at
1.5 s. A network delay on the replicas' links (0.5-1.9 s) is the replication lag. Loss windows
are counted in entries: a window of w ms holds ~w entries at 1000/s, Poisson, so ±3 sigma is
±30 for 100 entries and ±52 for 300; the tolerances (0.6-1.5x) also cover the ±10 ms
granularity of the replica link and the entries of the iteration in flight.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis_support import events_of, lag_then_power_loss, messages, run_redis, spec

from simulator import ScenarioError, load_scenario

RATE = 1000.0  # XADD per second
SENTINEL = {"count": 3, "quorum": 2, "down_after_milliseconds": 1000}
SLOW_GROUP = {"consumers": 2, "processing_ms": 5.0, "rate_per_s": RATE}  # 400/s read
CRASH_MS = 1500.0


def _failover_run(
    delay_ms: float,
    wait: int = 0,
    workload: str = "stream",
    consumers: dict[str, Any] | None = None,
    seed: int = 1,
) -> Any:
    redis = {
        "workload": workload,
        "replicas": 2,
        "sentinel": SENTINEL,
        "client": {"wait_replicas": wait},
        "ops": {"xautoclaim_min_idle_ms": 1000},
    }
    faults = lag_then_power_loss(delay_ms, CRASH_MS / 1000)
    w = consumers or SLOW_GROUP
    return run_redis(spec(redis=redis, workload=w, faults=faults, duration_s=4.0, seed=seed))


def _m(result: Any) -> dict[str, Any]:
    return result.summary["messages"]


def _lost(result: Any) -> int:
    return int(_m(result)["lost_by_cause"].get("discarded_on_failover", 0))


def test_consumers_continue_on_the_promoted_replica_after_sentinel_failover() -> None:
    result = _failover_run(100.0)
    failover = events_of(result, "failover")
    assert len(failover) == 1 and failover[0][1]["new_primary"] in ("replica1", "replica2")
    switched_at = events_of(result, "clients_switched")[0][0]
    frame = messages(result)
    # entries written to the new master (acknowledged after the clients switched) are all
    # processed by the group there: none lost, none left over
    later = frame[frame["ack_ms"] > switched_at]
    assert len(later) > 0.8 * RATE * (4000.0 - switched_at) / 1000
    assert (later["fate"] == "delivered").all()
    # the group kept processing after the failover (its backlog included)
    assert frame["deliver_ms"].max() > switched_at
    m = _m(result)
    assert m["in_flight"] == 0
    assert set(m["lost_by_cause"]) <= {"discarded_on_failover"}


def test_acknowledged_xadds_lost_are_those_in_the_replication_lag_window_more_with_more_lag() -> (
    None
):
    short, long = _failover_run(100.0), _failover_run(300.0)
    assert 0.6 * RATE * 0.1 <= _lost(short) <= 1.5 * RATE * 0.1
    assert 0.6 * RATE * 0.3 <= _lost(long) <= 1.5 * RATE * 0.3
    assert _lost(long) > 2 * _lost(short)
    # every lost entry was acknowledged in the lag window before the power loss (+ one
    # iteration and the reply's way back)
    frame = messages(long)
    lost = frame[frame["fate"] == "lost"]
    assert lost["ack_ms"].min() >= CRASH_MS - 300.0 - 15.0
    assert lost["ack_ms"].max() <= CRASH_MS + 1.0


def test_entries_the_group_processed_on_the_old_master_are_not_lost() -> None:
    # a group that keeps up (2 x 1000/s) has read the lag window before the master died:
    # those entries never reach the new master, but they were processed: delivered, not lost
    fast = _failover_run(100.0, consumers={**SLOW_GROUP, "processing_ms": 1.0})
    assert events_of(fast, "failover")
    assert _m(fast)["lost"] == 0


def test_wait_one_after_xadd_shrinks_the_failover_loss_to_zero() -> None:
    plain, waited = _failover_run(100.0), _failover_run(100.0, wait=1)
    assert _lost(plain) > 50
    assert _m(waited)["lost"] == 0
    # what WAIT had not confirmed when the master died is indeterminate, not acknowledged
    assert _m(waited)["indeterminate"] > _m(plain)["indeterminate"]
    # and each XADD waits a round trip over the delayed replica links (2 x 100 ms)
    assert waited.summary["latency_ms"]["ack"]["p99"] > 190.0


def test_deliveries_and_acks_the_replica_missed_come_back_as_duplicates_not_loss() -> None:
    result = _failover_run(300.0)
    m = _m(result)
    dups = m["duplicates_by_cause"]
    # the group read ~400 entries/s: the XREADGROUPs of the last 300 ms never reached the
    # replica, so the new master hands those entries out again (~120); XACKs it missed leave
    # entries pending there, claimed by XAUTOCLAIM after min-idle-time
    assert 0.5 * 400 * 0.3 <= dups.get("redelivered_after_failover", 0) <= 1.5 * 400 * 0.3
    assert dups.get("claimed_pending_entry", 0) > 0
    frame = messages(result)
    again = frame[frame["deliveries"] > 1]
    assert (again["fate"] == "delivered").all()
    # the only loss is the unread lag window: an entry the replica had is never lost
    assert m["lost"] == _lost(result)
    assert m["anomalies"].get("resurrected", 0) == 0


def test_same_seed_same_stream_failover() -> None:
    a, b = _failover_run(100.0, seed=7), _failover_run(100.0, seed=7)
    assert a.summary == b.summary


def test_list_queue_fails_over_too_losing_the_lag_window_and_repopping_unseen_pops() -> None:
    short, long = (_failover_run(d, workload="list") for d in (100.0, 300.0))
    assert 0.6 * RATE * 0.1 <= _lost(short) <= 1.5 * RATE * 0.1
    assert _lost(long) > 2 * _lost(short)
    # BRPOPs the replica never saw: the items are still in its list and are popped again
    dups = _m(long)["duplicates_by_cause"]
    assert 0.5 * 400 * 0.3 <= dups.get("redelivered_after_failover", 0) <= 1.5 * 400 * 0.3
    assert _m(long)["in_flight"] == 0


def test_pubsub_with_replicas_is_refused_naming_the_field_value_and_allowed() -> None:
    data = spec(redis={"workload": "pubsub", "replicas": 1})
    with pytest.raises(ScenarioError) as err:
        load_scenario(data)
    text = str(err.value)
    assert "replicas" in text and "'pubsub'" in text
    assert "'kv', 'stream', 'list'" in text


def test_power_loss_brings_the_group_back_as_of_the_fsynced_aof_redelivering_later_reads() -> None:
    # no replicas: the master restarts from its AOF (everysec); the stream and its group state
    # persist like any key, so reads and acks after the last fsync are forgotten with the XADDs
    redis = {"workload": "stream", "appendonly": "yes", "ops": {"xautoclaim_min_idle_ms": 1000}}
    faults = [
        {"at_s": CRASH_MS / 1000, "kind": "power_loss", "target": "primary", "duration_s": 1.0}
    ]
    result = run_redis(spec(redis=redis, workload=SLOW_GROUP, faults=faults, duration_s=4.0))
    m = _m(result)
    # the unread XADDs after the last fsync (everysec: at most ~2 s of them) are lost...
    assert set(m["lost_by_cause"]) == {"not_fsynced_at_power_loss"}
    assert 0 < m["lost"] <= 2.0 * RATE
    frame = messages(result)
    assert frame.loc[frame["fate"] == "lost", "ack_ms"].min() >= CRASH_MS - 2000.0
    # ...the entries the group read after it are handed out again: duplicates, not loss
    assert m["duplicates_by_cause"].get("redelivered_after_restart", 0) > 0
    assert m["in_flight"] == 0 and m["anomalies"]["resurrected"] == 0
