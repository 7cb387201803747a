"""Leader elections by the controller: clean, unclean, offline, and truncation by leader epoch."""

from __future__ import annotations

import json

from kafka_helpers import events, messages, run_kafka, scenario

# The leader of partition 0 is cut off from its followers and the consumers (not from the
# controller or the producers): it shrinks the ISR to itself after replica.lag.time.max.ms and,
# with min.insync.replicas=1, keeps acknowledging writes nobody else has. Then it crashes.
ISOLATE_THEN_CRASH = [
    {
        "at_s": 1.0,
        "kind": "partition",
        "groups": [["leader"], ["followers", "consumers"]],
        "duration_s": 6.0,
    },
    {"at_s": 5.0, "kind": "crash", "target": "leader", "duration_s": 7.0},
]


def _isolated_leader_run(unclean: bool):
    return run_kafka(
        scenario(
            ISOLATE_THEN_CRASH,
            scenario__duration_s=15.0,
            workload__rate_per_s=1000.0,
            kafka__topic__min_insync_replicas=1,
            kafka__topic__unclean_leader_election_enable=unclean,
            kafka__broker__replica_lag_time_max_ms=2000.0,
        )
    )


def test_unclean_election_after_isr_shrank_to_the_leader_loses_acknowledged_records() -> None:
    result = _isolated_leader_run(unclean=True)
    m = messages(result)
    assert len(events(result, "unclean_election")) >= 1
    # ~2 s between the ISR shrink and the crash at ~333 records/s on partition 0
    assert m["lost_by_cause"].get("unclean_election_truncation", 0) > 200
    assert m["lost"] == m["lost_by_cause"]["unclean_election_truncation"]


def test_without_unclean_election_the_partition_stays_offline_until_the_old_leader_returns() -> (
    None
):
    result = _isolated_leader_run(unclean=False)
    m = messages(result)
    assert m["lost"] == 0
    assert m["delivered"] == m["produced"]
    offline = events(result, "partition_offline")
    assert len(offline) >= 1
    returned = events(result, "leader_elected")
    back = [json.loads(d) for d in returned["detail"]]
    assert any(d["reason"] == "broker_returned" and d["partition"] == 0 for d in back)
    t_back = float(returned["t_ms"].iloc[-1])
    assert t_back >= 12000.0  # not before the old leader restarted at t=12 s


def test_returning_leader_truncates_to_the_new_leader_epoch_and_rejoins_the_isr() -> None:
    # acks=1 with followers 10 ms behind: the old leader has a suffix nobody else has
    faults = [
        {"at_s": 1.0, "kind": "delay", "target": "followers", "delay_ms": 10.0, "duration_s": 2.0},
        {"at_s": 2.0, "kind": "crash", "target": "leader", "duration_s": 4.0},
    ]
    result = run_kafka(scenario(faults, kafka__producer__acks="1", workload__rate_per_s=4000.0))
    truncations = events(result, "truncation")
    details = [json.loads(d) for d in truncations["detail"]]
    old_leader = result.summary["faults"][1]["nodes"][0]
    after_restart = truncations["t_ms"] >= 6000.0
    assert any(
        d["reason"] == "diverging_epoch" and node == old_leader and late
        for d, node, late in zip(details, truncations["node"], after_restart, strict=True)
    )
    expanded = events(result, "isr_expand")
    assert (expanded["t_ms"] > 6000.0).any()  # back in sync after the restart at t=6 s


def test_followers_never_lose_committed_records_through_repeated_crashes() -> None:
    # KIP-101: a returning replica truncates to the leader's epoch boundary, never to a stale
    # HW, so with acks=all and min.insync.replicas=2 crash after crash loses nothing.
    faults = [
        {"at_s": 1.0, "kind": "crash", "target": "a_follower", "duration_s": 1.0},
        {"at_s": 2.2, "kind": "crash", "target": "leader", "duration_s": 2.0},
        {"at_s": 4.5, "kind": "crash", "target": "a_follower", "duration_s": 1.0},
        {"at_s": 6.0, "kind": "crash", "target": "leader", "duration_s": 1.5},
    ]
    result = run_kafka(scenario(faults, scenario__duration_s=9.0, workload__rate_per_s=1500.0))
    m = messages(result)
    assert m["lost"] == 0
    assert m["in_flight"] == 0


def test_long_gc_pause_gets_the_leader_fenced_and_replaced_without_loss() -> None:
    faults = [{"at_s": 2.0, "kind": "pause", "target": "leader", "duration_s": 5.0}]
    result = run_kafka(scenario(faults, scenario__duration_s=10.0))
    assert len(events(result, "broker_fenced")) >= 1
    assert len(events(result, "leader_elected")) >= 1
    m = messages(result)
    assert m["lost"] == 0


def test_eligible_leader_replicas_bring_a_partition_back_with_a_replica_that_left_the_isr() -> None:
    # KIP-966: RF=3, min.insync.replicas=2. A follower dies (ISR {L, F2}), then F2 shuts down
    # cleanly: the ISR shrinks to {L}, below min.insync.replicas, so F2 becomes an eligible
    # leader replica and the HW stops moving. Then L dies. When F2 returns it can lead cleanly
    # (it has every committed record); without ELR the partition would wait for L.
    faults = [
        {"at_s": 1.0, "kind": "crash", "target": "a_follower"},
        {"at_s": 4.0, "kind": "stop", "target": "followers"},
        {"at_s": 7.0, "kind": "crash", "target": "leader"},
        {"at_s": 10.0, "kind": "restart", "target": "broker2"},
    ]
    result = run_kafka(
        scenario(
            faults,
            scenario__duration_s=14.0,
            workload__rate_per_s=600.0,
            kafka__topic__partitions=1,
            kafka__broker__eligible_leader_replicas_enable=True,
        )
    )
    elected = [json.loads(d) for d in events(result, "leader_elected")["detail"]]
    assert any(d["leader"] == 2 and d["reason"] == "broker_returned" for d in elected)
    assert messages(result)["lost"] == 0
