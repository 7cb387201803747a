"""Network partitions and the last replica standing: the Jepsen-style Kafka cases."""

from __future__ import annotations

from kafka_helpers import events, messages, run_kafka, scenario

# The leader of partition 0 loses the controller, its followers and the consumers, but still
# hears its producers: the controller fences it and elects a follower, while it goes on
# believing it leads ("zombie leader") until the heal brings it the new metadata.
ZOMBIE = [
    {
        "at_s": 1.0,
        "kind": "partition",
        "groups": [["leader"], ["followers", "controller", "consumers"]],
        "duration_s": 5.0,
    }
]


def _zombie(acks: str) -> dict:
    return messages(
        run_kafka(
            scenario(
                ZOMBIE,
                scenario__duration_s=9.0,
                kafka__producer__acks=acks,
                kafka__producer__request_timeout_ms=2000.0,
            )
        )
    )


def test_a_partitioned_leader_keeps_acknowledging_acks1_writes_that_are_then_lost() -> None:
    m = _zombie("1")
    # the producers never hear an error from it: ~5 s of partition-0 writes (~667/s, ~3300
    # records) are acknowledged by the deposed leader alone and truncated when it learns
    assert m["lost_by_cause"].get("leader_failed_before_replication", 0) > 1000


def test_a_partitioned_leader_cannot_acknowledge_acks_all_writes() -> None:
    m = _zombie("all")
    assert m["lost"] == 0  # it can neither advance its HW nor shrink its ISR alone


def test_last_replica_standing_loses_committed_records_in_a_power_loss() -> None:
    # RF=3, min.insync.replicas=1, acks=all. Both followers crash: the ISR is the leader alone
    # and keeps committing. Then it loses power (nothing was written back yet), comes back,
    # and being the last ISR member it is elected again with its empty log: the followers
    # truncate to it, and committed records are gone everywhere (semantics.md K7; KIP-966's
    # ELR with unclean recovery is Kafka's fix).
    faults = [
        {"at_s": 0.5, "kind": "partition", "groups": [["all_servers"], ["consumers"]]},
        {"at_s": 1.0, "kind": "crash", "target": "followers", "duration_s": 4.0},
        {"at_s": 4.0, "kind": "power_loss", "target": "leader", "duration_s": 2.0},
    ]
    result = run_kafka(
        scenario(
            faults,
            scenario__duration_s=9.0,
            workload__rate_per_s=600.0,
            kafka__topic__min_insync_replicas=1,
        )
    )
    m = messages(result)
    assert m["lost_by_cause"].get("not_fsynced_at_power_loss", 0) > 200
    assert len(events(result, "unclean_election")) == 0  # every election was clean
