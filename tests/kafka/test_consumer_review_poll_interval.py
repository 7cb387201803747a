"""max.poll.interval.ms bounds the poll a member processes, not a hypothetical full one.

poll() returns at most max.poll.records, and fewer when fewer were fetched: a member that keeps
up gets a few records per poll and calls poll() again within milliseconds, whatever
max.poll.records x processing time would be. Here 300 records/s go to 3 members at 1 ms a
record (each busy ~10% of the time, polls of a record or two), with max.poll.interval.ms at
300 ms, below the 500 ms a full poll of 500 records would take.
"""

from __future__ import annotations

from kafka_helpers import events, messages, run_kafka, scenario


def test_members_that_keep_up_stay_in_the_group_below_a_full_polls_time() -> None:
    result = run_kafka(
        scenario(
            workload__rate_per_s=300.0,
            workload__processing_ms=1.0,
            kafka__consumer__max_poll_interval_ms=300.0,
        )
    )
    # before the fix every member left at its first heartbeat check and never came back: ~90%
    # of the records stayed in flight
    assert len(events(result, "member_left")) == 0
    m = messages(result)
    assert m["delivered"] == m["produced"] and m["duplicates"] == 0


def test_a_member_that_left_rejoins_at_its_next_poll() -> None:
    # consumer0 (partitions 0 and 1, ~1333 records/s) is slowed 10x from 3 s to the end of the
    # measured phase (10 s): a poll of 100 records takes 0.8 s > max.poll.interval.ms (0.5 s).
    # It leaves, rejoins at its next poll, gets its partitions back, falls behind again and
    # leaves again, as a real member does; before the fix it rejoined only once fast again
    faults = [{"at_s": 3.0, "kind": "slow_consumer", "target": "a_consumer", "factor": 10.0}]
    result = run_kafka(
        scenario(
            faults,
            workload__consumers=2,
            workload__processing_ms=0.8,
            scenario__drain_s=60.0,
            kafka__consumer__max_poll_interval_ms=500.0,
            kafka__consumer__max_poll_records=100,
            kafka__consumer__heartbeat_interval_ms=250.0,
        )
    )
    left = events(result, "member_left")
    rebalances = events(result, "rebalance")
    rejoined = rebalances[rebalances["detail"].str.contains("consumer0 rejoined")]
    slowed = (rejoined["t_ms"] > 3000.0) & (rejoined["t_ms"] < 10000.0)
    assert len(left) >= 2 and int(slowed.sum()) >= 2
    m = messages(result)
    assert m["lost"] == 0 and m["in_flight"] == 0
