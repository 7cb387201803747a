"""Review regressions: which replicas count for `min-replicas-to-write` (Redis model II).

Redis counts the replicas it lists as online whose last REPLCONF ACK is at most
min-replicas-max-lag seconds old (replication.c `refreshGoodSlavesCount`); a replica whose
connection closes is freed at once (networking.c `freeClient` refreshes the count). Sizes: 2000
writes/s over 1000 keys (redis_support), a few seconds; windows are in writes (±15% Poisson at
3 sigma for a few hundred writes, plus the 1 s ACK period).
"""

from __future__ import annotations

from typing import Any

from redis_support import events_of, run_redis, spec

RATE = 2000.0
SENTINEL = {"count": 3, "quorum": 2, "down_after_milliseconds": 1000}


def _m(result: Any) -> dict[str, Any]:
    return result.summary["messages"]


def test_a_crashed_replica_stops_counting_at_once_for_min_replicas_to_write() -> None:
    # the replica process dies: its connection closes and the master refuses writes
    # (-NOREPLICAS) until it is back and resynchronized, not for max-lag (10 s) more
    redis = {"replicas": 1, "min_replicas_to_write": 1}
    faults = [{"at_s": 1.0, "kind": "crash", "target": "replica1", "duration_s": 1.0}]
    result = run_redis(spec(redis=redis, faults=faults, duration_s=3.0))
    failed = _m(result)["failed"]
    assert 0.85 * RATE * 1.0 <= failed <= 1.25 * RATE * 1.0
    assert _m(result)["lost"] == 0


def test_a_replica_whose_host_lost_power_counts_until_its_last_ack_is_max_lag_old() -> None:
    # no FIN from a dead host: the master keeps the replica, and its last ACK, until max-lag
    redis = {"replicas": 1, "min_replicas_to_write": 1, "min_replicas_max_lag": 1}
    faults = [{"at_s": 1.0, "kind": "power_loss", "target": "replica1", "duration_s": 3.0}]
    result = run_redis(spec(redis=redis, faults=faults, duration_s=4.0))
    failed = _m(result)["failed"]
    # accepted for 1-2 s after the last ACK (lag in whole seconds), refused for the rest
    assert RATE * 0.8 <= failed <= RATE * 2.3


def test_a_deposed_master_counts_the_promoted_replica_by_its_last_ack_until_max_lag() -> None:
    # the master, the clients and one sentinel are cut off from the only replica and the other
    # sentinels, which promote it. The old master never hears the replica leave (REPLICAOF NO
    # ONE closes a connection it cannot reach): it takes writes until the replica's last ACK is
    # max-lag old (Sentinel docs, "Example 2"), not only until the failover
    max_lag_s = 4
    redis = {
        "replicas": 1,
        "sentinel": SENTINEL,
        "min_replicas_to_write": 1,
        "min_replicas_max_lag": max_lag_s,
    }
    groups = [["redis", "clients", "sentinel1"], ["replica1", "sentinel2", "sentinel3"]]
    faults = [{"at_s": 1.0, "kind": "partition", "groups": groups, "duration_s": 7.0}]
    result = run_redis(spec(redis=redis, faults=faults, duration_s=9.0))
    failover_at = events_of(result, "failover")[0][0]
    assert failover_at < 1000.0 + 3000.0  # promoted ~2.5 s into the cut, before max-lag ends
    lost = int(_m(result)["lost_by_cause"].get("discarded_on_failover", 0))
    # the window is max-lag to max-lag + 2 s (ACK period, whole-second lag) from the cut
    assert RATE * max_lag_s * 0.8 <= lost <= RATE * (max_lag_s + 2)
