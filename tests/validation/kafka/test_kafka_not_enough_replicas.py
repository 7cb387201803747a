"""K4 on a real cluster: two of three brokers down, min.insync.replicas=2.

Replication factor 3, min.insync.replicas=2. Both followers of the partition are killed; once
the controller has fenced them (broker.session.timeout.ms = 3000) the ISR is the leader alone:

- acks=all: the leader refuses the write with NOT_ENOUGH_REPLICAS; with retries=0 the client
  sees the error at once. The records *failed* (the client knows), they are not lost, and since
  the leader refused them before appending, none of them is ever readable.
- acks=1 still succeeds with one replica: min.insync.replicas only applies to acks=all.

After the followers are back and in the ISR, acks=all writes succeed again, and every record
acknowledged before, during and after the outage is readable. `test_sim_*` is the simulated twin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from kafka_clients import ProducerSettings, RecordingProducer, read_partition
from kafka_cluster import KafkaCluster
from kafka_sim import two_down_scenario

from simulator import run

RECORDS_PER_PHASE = 50

# retries=0 so the broker's answer reaches the client as it is (Java default: retries=MAX, and
# the same error would surface as a TimeoutException after delivery.timeout.ms).
ACKS_ALL = ProducerSettings(
    acks="all",
    enable_idempotence=False,
    linger_ms=5,
    batch_size=16384,
    max_in_flight_requests_per_connection=5,
    retries=0,
    retry_backoff_ms=100,
    request_timeout_ms=10000,
    delivery_timeout_ms=30000,
)


def send_phase(producer: RecordingProducer, count: int) -> range:
    first = producer.next_id
    for _ in range(count):
        producer.send_and_wait(timeout_s=30)
    return range(first, producer.next_id)


@pytest.mark.real_kafka
@pytest.mark.xdist_group("kafka")
def test_two_brokers_down_acks_all_fails_with_not_enough_replicas_and_loses_nothing(
    kafka: KafkaCluster, topic: str, report_outcome: Callable[[str], None]
) -> None:
    kafka.create_topic(topic, config={"min.insync.replicas": "2"})
    # polled: a broker that has not applied the new topic yet answers UNKNOWN_TOPIC_OR_PART
    state = kafka.wait_for_partition(
        topic, lambda s: s.leader >= 0 and len(s.isr) == 3, what="has a leader and a full ISR"
    )
    leader = state.leader
    followers = [r for r in state.replicas if r != leader]
    strict = RecordingProducer(kafka.bootstrap, topic, ACKS_ALL)
    before = send_phase(strict, RECORDS_PER_PHASE)
    assert set(before) <= strict.log.acked, strict.log.failed

    for follower in followers:
        kafka.crash(follower)
    kafka.wait_for_partition(
        topic, lambda s: s.isr == [leader], what="ISR shrunk to the leader", timeout_s=30
    )
    during = send_phase(strict, RECORDS_PER_PHASE)
    errors = {strict.log.failed.get(i) for i in during}
    # acks=1 on the same leader: accepted (min.insync.replicas does not apply)
    relaxed = RecordingProducer(kafka.bootstrap, topic, replace(ACKS_ALL, acks="1"))
    relaxed.next_id = 1_000_000  # its own id range
    relaxed_ids = send_phase(relaxed, RECORDS_PER_PHASE)

    kafka.heal()
    kafka.wait_for_partition(topic, lambda s: len(s.isr) == 3, what="full ISR after restart")
    after = send_phase(strict, RECORDS_PER_PHASE)
    stored = {message_id for _offset, message_id in read_partition(kafka.bootstrap, topic)}

    acked = strict.log.acked | relaxed.log.acked
    report_outcome(
        f"acks=all while 2 of 3 down: {len(strict.log.failed)} of {len(during)} failed "
        f"({', '.join(sorted(e for e in errors if e))}); acks=1 then: "
        f"{len(relaxed.log.acked)} of {len(relaxed_ids)} acked; acked but lost "
        f"{len(acked - stored)}; failed yet stored {len(set(strict.log.failed) & stored)}"
    )
    # every record sent while two brokers are down fails; the refusal is NOT_ENOUGH_REPLICAS.
    # A request already waiting on the leader when the ISR changed may instead time out
    # (REQUEST_TIMED_OUT: indeterminate, it may or may not be stored), seen once in CI.
    assert not set(during) & strict.log.acked, "acks=all acknowledged with one replica"
    refused = {i for i in during if strict.log.failed.get(i) == "NOT_ENOUGH_REPLICAS"}
    assert errors <= {"NOT_ENOUGH_REPLICAS", "REQUEST_TIMED_OUT"}, strict.log.failed
    assert len(refused) >= len(during) - 2, strict.log.failed
    assert set(relaxed_ids) <= relaxed.log.acked, relaxed.log.failed
    assert set(after) <= strict.log.acked, strict.log.failed
    assert acked - stored == set(), "acknowledged records lost"
    # refused before the append: a refused record never shows up (failed, not indeterminate)
    assert refused & stored == set()


def test_sim_two_brokers_down_acks_all_fails_and_loses_nothing() -> None:
    """The same settings and fault (both followers crash, come back later) in the simulator.

    The simulated producer sends all through the outage, also in the seconds before the
    controller fences the dead brokers, when a request may be appended and then time out
    (indeterminate); the real test only sends once the ISR has shrunk.
    """
    strict = run(two_down_scenario(ACKS_ALL, rate_per_s=50.0), seed=1).summary["messages"]
    relaxed = run(two_down_scenario(replace(ACKS_ALL, acks="1"), rate_per_s=50.0), seed=1)
    relaxed_messages = relaxed.summary["messages"]
    assert strict["failed"] > 0, strict
    assert strict["lost"] == 0, strict
    assert strict["anomalies"]["failed_but_delivered"] == 0, strict
    assert relaxed_messages["failed"] == 0 and relaxed_messages["lost"] == 0, relaxed_messages
