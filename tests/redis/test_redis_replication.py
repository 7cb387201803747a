"""Asynchronous replication, WAIT, Sentinel failover and split brain (Redis model II).

Sizes: 2000 writes/s over 1000 keys, a few seconds each. Loss windows are measured in writes:
at 2000 writes/s a window of w ms holds ~2w writes (the arrivals are Poisson, so a window
holding N writes varies by ~sqrt(N): ±15% for N = 200 at 3 sigma is ±45); tolerances below
are wider than that plus the ±10 ms granularity of the replica link and the fault timers.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis_support import events_of, lag_then_power_loss, run_redis, spec

RATE = 2000.0  # writes per second (redis_support default)
SENTINEL = {"count": 3, "quorum": 2, "down_after_milliseconds": 1000}
SPLIT = [["redis", "clients", "sentinel1"], ["replica1", "replica2", "sentinel2", "sentinel3"]]


def _failover_run(delay_ms: float, wait: int = 0) -> Any:
    """Replication lag = a network delay on the replicas' links; the master then loses power."""
    redis = {"replicas": 2, "sentinel": SENTINEL, "client": {"wait_replicas": wait}}
    return run_redis(spec(redis=redis, faults=lag_then_power_loss(delay_ms, 1.5), duration_s=4.0))


def _lost(result: Any, cause: str = "discarded_on_failover") -> int:
    return int(result.summary["messages"]["lost_by_cause"].get(cause, 0))


def test_replicas_follow_the_master_and_lose_nothing_without_faults() -> None:
    result = run_redis(spec(redis={"replicas": 2}, duration_s=2.0))
    stats = events_of(result, "replication_stats")[-1][1]
    assert stats["master"] == "redis" and stats["failovers"] == 0
    offsets = list(stats["offsets"].values())
    assert len(offsets) == 2  # both replicas report an offset
    # every write replicated, within the last link delay (< 1 ms: at most a few writes)
    produced = result.summary["messages"]["produced"]
    assert all(produced - 5 <= offset <= produced for offset in offsets), (offsets, produced)
    assert result.summary["messages"]["lost"] == 0


def test_async_failover_loses_the_writes_in_the_replication_lag_window_more_with_more_lag() -> None:
    short, long = _failover_run(100.0), _failover_run(300.0)
    # the promoted replica misses what the master sent during its last one-way delay
    assert 0.6 * RATE * 0.1 <= _lost(short) <= 1.4 * RATE * 0.1
    assert 0.6 * RATE * 0.3 <= _lost(long) <= 1.4 * RATE * 0.3
    assert _lost(long) > 2 * _lost(short)
    failover = events_of(short, "failover")
    assert len(failover) == 1 and failover[0][1]["new_primary"] in ("replica1", "replica2")


def test_wait_one_replica_closes_the_failover_loss_but_costs_a_round_trip() -> None:
    plain, waited = _failover_run(100.0), _failover_run(100.0, wait=1)
    assert _lost(plain) > 100
    assert waited.summary["messages"]["lost"] == 0
    # what WAIT could not confirm before the power loss is indeterminate, not acknowledged
    assert waited.summary["messages"]["indeterminate"] > plain.summary["messages"]["indeterminate"]
    # one round trip over the delayed replica links (2 x 100 ms) instead of ~0.2 ms
    assert plain.summary["latency_ms"]["ack"]["p50"] < 5.0
    assert 195.0 <= waited.summary["latency_ms"]["ack"]["p50"] <= 215.0


def test_wait_with_an_unreachable_replica_times_out_and_leaves_writes_indeterminate() -> None:
    redis = {"replicas": 1, "client": {"wait_replicas": 1, "wait_timeout_ms": 100}}
    faults = [{"at_s": 1.0, "kind": "crash", "target": "replica1", "duration_s": 1.0}]
    result = run_redis(spec(redis=redis, faults=faults, duration_s=3.0))
    m = result.summary["messages"]
    # one second without the replica: ~2000 WAITs return 0 < 1 (restart + resync add a little)
    assert 0.8 * RATE <= m["indeterminate"] <= 1.5 * RATE
    assert m["lost"] == 0


def test_wait_for_more_replicas_than_remain_after_a_failover_times_out() -> None:
    # WAIT 2 with two replicas; the master dies for good and Sentinel promotes one of them:
    # the new master has a single replica, so every WAIT 2 returns 1 at its timeout (found by
    # the property fuzzer: the model indexed a second acknowledgement that did not exist)
    redis = {
        "replicas": 2,
        "sentinel": {**SENTINEL, "down_after_milliseconds": 200.0},
        "client": {"wait_replicas": 2, "wait_timeout_ms": 50},
    }
    faults = [{"at_s": 0.5, "kind": "crash", "target": "primary"}]
    result = run_redis(spec(redis=redis, faults=faults, duration_s=5.0))
    switched_ms = events_of(result, "clients_switched")[0][0]
    # after the switch (about 2 s before the end) no write is acknowledged: WAIT 2 gets 1, the
    # client cannot tell whether the write is there (indeterminate; the last few are still
    # waiting when the run ends)
    assert switched_ms < 3500.0
    status = result.messages.loc[lambda df: df["intended_ms"] >= switched_ms, "status"]
    assert len(status) >= 0.8 * RATE * (5000.0 - switched_ms) / 1000.0
    assert (status == "acked").sum() == 0
    assert (status == "indeterminate").mean() > 0.9
    assert result.summary["messages"]["lost"] == 0


def test_sentinel_fails_over_after_down_after_milliseconds_and_writes_fail_meanwhile() -> None:
    down_after = 2000.0
    redis = {"replicas": 2, "sentinel": {**SENTINEL, "down_after_milliseconds": down_after}}
    faults = [{"at_s": 1.0, "kind": "crash", "target": "primary", "duration_s": 10.0}]
    result = run_redis(spec(redis=redis, faults=faults, duration_s=6.0))
    crash_ms = 1000.0
    sdown = min(t for t, _ in events_of(result, "sdown"))
    failover_ms, detail = events_of(result, "failover")[0]
    switched_ms = events_of(result, "clients_switched")[0][0]
    # SDOWN down-after-milliseconds after the last PING reply (PINGs every second: the last
    # reply came up to 1 s before the crash), ODOWN at the next PINGs of the others, election
    # delay <= 1 s; clients learn it within a lookup period after the leader saw the promotion
    assert crash_ms + down_after - 1000 <= sdown <= crash_ms + down_after + 1000
    assert sdown < failover_ms <= sdown + 2100
    assert failover_ms + 1000 <= switched_ms <= failover_ms + 2100
    assert detail["old_primary"] == "redis"
    roles = {(e[1]["role"]) for e in events_of(result, "role_change")}
    assert roles == {"primary", "replica"}  # the old master came back as a replica at the end
    m = result.summary["messages"]
    # writes sent to the dead master until the clients switched were refused
    outage_s = (switched_ms - crash_ms) / 1000.0
    assert 0.8 * RATE * outage_s <= m["failed"] <= 1.2 * RATE * outage_s
    assert m["lost"] < 5  # a crashed process's kernel still sends what it had written


def test_split_brain_loses_the_isolated_masters_writes_on_heal() -> None:
    redis = {"replicas": 2, "sentinel": SENTINEL}
    faults = [{"at_s": 1.0, "kind": "partition", "groups": SPLIT, "duration_s": 5.0}]
    result = run_redis(spec(redis=redis, faults=faults, duration_s=8.0))
    # the clients stay with the old master (they only reach sentinel1, which never saw it
    # down): every write from the cut (1 s) to the heal (6 s) is acknowledged, then discarded
    lost = _lost(result)
    assert 0.9 * RATE * 5.0 <= lost <= 1.25 * RATE * 5.0
    assert len(events_of(result, "failover")) == 1
    assert events_of(result, "role_change")[-1][1]["role"] == "replica"


@pytest.mark.parametrize("max_lag_s", [1, 2])
def test_min_replicas_to_write_bounds_the_split_brain_loss(max_lag_s: int) -> None:
    redis = {
        "replicas": 2,
        "sentinel": SENTINEL,
        "min_replicas_to_write": 1,
        "min_replicas_max_lag": max_lag_s,
    }
    faults = [{"at_s": 1.0, "kind": "partition", "groups": SPLIT, "duration_s": 5.0}]
    result = run_redis(spec(redis=redis, faults=faults, duration_s=8.0))
    lost = _lost(result)
    # the isolated master refuses writes (NOREPLICAS) once its last replica ACK is older than
    # max-lag: lag counts whole seconds, and ACKs come once a second, so the window is
    # between max_lag and max_lag + 2 s
    assert RATE * max_lag_s * 0.8 <= lost <= RATE * (max_lag_s + 2)
    assert result.summary["messages"]["failed"] > RATE * (5.0 - max_lag_s - 2)


def test_persistence_off_auto_restart_wipes_the_replicas_too() -> None:
    redis = {"replicas": 2, "save": "", "appendonly": False}
    faults = [{"at_s": 1.0, "kind": "crash", "target": "redis", "duration_s": 0.5}]
    result = run_redis(spec(redis=redis, faults=faults, duration_s=2.0))
    # the master came back empty with a new replication id: both replicas resynced in full
    resyncs = [d["master"] for _, d in events_of(result, "full_resync")]
    assert resyncs.count("redis") == 2
    stats = events_of(result, "replication_stats")[-1][1]
    produced = result.summary["messages"]["produced"]
    # every write before the crash is gone from the master and from both replicas
    assert _lost(result, "no_persistence") >= 0.9 * RATE * 1.0
    assert len(stats["offsets"]) == 2
    assert all(offset < 0.6 * produced for offset in stats["offsets"].values())


def test_a_cut_shorter_than_repl_timeout_keeps_the_link_a_longer_one_resyncs() -> None:
    def cut(duration_s: float) -> list[dict[str, Any]]:
        groups = [["replica1"], ["redis", "clients"]]
        return [{"at_s": 0.5, "kind": "partition", "groups": groups, "duration_s": duration_s}]

    # a silent 0.5 s cut is within repl-timeout (60 s): the TCP connection survives, the
    # stream flows on after the heal, no PSYNC
    short = run_redis(spec(redis={"replicas": 1}, faults=cut(0.5), duration_s=1.5))
    assert not events_of(short, "replica_disconnected")
    assert not events_of(short, "partial_resync") and not events_of(short, "full_resync")
    # repl-timeout 1 s, a 1.5 s cut: the replica drops the link after 1 s, and on the heal
    # PSYNC continues from the backlog
    redis = {"replicas": 1, "repl_timeout": 1}
    long = run_redis(spec(redis=redis, faults=cut(1.5), duration_s=2.5))
    (at_ms, detail), *_ = events_of(long, "replica_disconnected")
    assert 1500.0 <= at_ms <= 1600.0 and detail["silent_for_ms"] >= 1000.0
    assert len(events_of(long, "partial_resync")) == 1
    assert not events_of(long, "full_resync")
    # ~3000 writes x ~140 bytes of stream do not fit in a 10 kB backlog: a full resync
    tiny = run_redis(
        spec(redis={**redis, "repl_backlog_size": "10kb"}, faults=cut(1.5), duration_s=2.5)
    )
    assert len(events_of(tiny, "full_resync")) == 1
    assert tiny.summary["messages"]["lost"] == 0


def test_writes_to_a_replica_are_refused_read_only() -> None:
    # the clients keep the old master's address for up to a lookup period after it was
    # demoted: those writes get -READONLY (failed, not acknowledged, not lost)
    redis = {"replicas": 2, "sentinel": SENTINEL}
    faults = [{"at_s": 1.0, "kind": "partition", "groups": SPLIT, "duration_s": 3.0}]
    result = run_redis(spec(redis=redis, faults=faults, duration_s=6.0))
    demoted = events_of(result, "role_change")[-1][0]
    switched = events_of(result, "clients_switched")[0][0]
    assert switched >= demoted
    assert result.summary["messages"]["failed"] >= 0.5 * RATE * (switched - demoted) / 1000.0


def test_a_loading_master_answers_pings_and_is_not_failed_over() -> None:
    # 2M background keys x 100 B at 8000 ms/GB: the restart loads for ~2.5 s, longer than
    # down-after-milliseconds (1 s); a LOADING master replies to PING, so no failover
    redis = {
        "replicas": 1,
        "sentinel": SENTINEL,
        "dataset_keys": 2_000_000,
        "save": "",
        "appendonly": True,
    }
    faults = [{"at_s": 1.0, "kind": "crash", "target": "redis", "duration_s": 0.2}]
    result = run_redis(spec(redis=redis, faults=faults, duration_s=5.0))
    loading = events_of(result, "loading")
    done = events_of(result, "loading_done")
    assert loading and done and done[-1][0] - loading[0][0] > 1500.0
    assert not events_of(result, "failover")
    assert not events_of(result, "sdown")


def test_replica_staleness_follows_the_replication_link_delay() -> None:
    faults = [
        {"at_s": 1.0, "kind": "delay", "target": "replica1", "delay_ms": 200, "duration_s": 1.0}
    ]
    result = run_redis(spec(redis={"replicas": 2}, faults=faults, duration_s=3.0))
    ts = result.timeseries
    before = ts[(ts.t_ms >= 200) & (ts.t_ms < 900)].replica_staleness_ms
    during = ts[(ts.t_ms >= 1300) & (ts.t_ms < 1900)].replica_staleness_ms
    after = ts[(ts.t_ms >= 2300) & (ts.t_ms < 2900)].replica_staleness_ms
    # a read from the lagging replica misses the writes of the last link delay (the oldest of
    # them is ~200 ms old); on a LAN link it misses at most the last fraction of a millisecond
    assert before.max() < 2.0 and after.max() < 2.0
    assert 190.0 <= during.median() <= 210.0
