"""Produce -> acknowledgement latency by acks on a real cluster: acks=0 <= acks=1 <= acks=all.

One record at a time (closed loop, linger.ms=0), rounds interleaved so that a noisy neighbour
slows every setting alike. What each setting waits for:

- acks=0: nothing; the client counts the record as acknowledged once the request is written
  to the socket;
- acks=1: the leader's append (one round trip);
- acks=all: the leader's append, then the followers' next fetch, which carries their new log
  end offset and lets the leader advance the high watermark (one more round trip at least).

The medians are compared with >=, not >: on loopback the differences are a fraction of a
millisecond (the public Kafka benchmarks show the same ordering with larger gaps on a network).
`test_sim_*` is the simulated twin.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import pytest
from kafka_clients import ProducerSettings, RecordingProducer
from kafka_cluster import KafkaCluster
from kafka_sim import latency_scenario

from simulator import run

ROUNDS = 6
PER_ROUND = 50  # 300 samples per setting: the median's rank error is ~ +-0.03 quantile
WARMUP = 20
ACKS = ("0", "1", "all")


def settings(acks: str) -> ProducerSettings:
    return ProducerSettings(
        acks=acks,
        enable_idempotence=False,  # only acks differs between the three producers
        linger_ms=0,
        batch_size=16384,
        max_in_flight_requests_per_connection=5,
        retries=2147483647,
        retry_backoff_ms=100,
        request_timeout_ms=30000,
        delivery_timeout_ms=120000,
    )


@pytest.mark.real_kafka
@pytest.mark.xdist_group("kafka")
def test_ack_latency_is_ordered_by_acks(
    kafka: KafkaCluster, topic: str, report_outcome: Callable[[str], None]
) -> None:
    kafka.create_topic(topic, config={"min.insync.replicas": "2"})
    producers = {acks: RecordingProducer(kafka.bootstrap, topic, settings(acks)) for acks in ACKS}
    for i, producer in enumerate(producers.values()):
        producer.next_id = i * 1_000_000  # disjoint ids
        for _ in range(WARMUP):  # connections, metadata, first-request costs
            producer.send_and_wait()
    samples: dict[str, list[float]] = {acks: [] for acks in ACKS}
    for _ in range(ROUNDS):
        for acks, producer in producers.items():
            for _ in range(PER_ROUND):
                message_id = producer.send_and_wait()
                assert message_id in producer.log.acked_s, producer.log.failed
                samples[acks].append(
                    (producer.log.acked_s[message_id] - producer.log.sent_s[message_id]) * 1000
                )
    medians = {acks: statistics.median(values) for acks, values in samples.items()}
    p90 = {acks: statistics.quantiles(values, n=10)[-1] for acks, values in samples.items()}
    report_outcome(
        "median ms " + ", ".join(f"acks={a}: {medians[a]:.3f} (p90 {p90[a]:.3f})" for a in ACKS)
    )
    assert medians["0"] <= medians["1"] <= medians["all"], medians


def test_sim_ack_latency_is_ordered_by_acks() -> None:
    """The same producers in the simulator at a light open-loop load (100 records/s)."""
    medians = {
        acks: run(latency_scenario(settings(acks), rate_per_s=100.0), seed=1).summary["latency_ms"][
            "ack"
        ]["p50"]
        for acks in ACKS
    }
    assert medians["0"] <= medians["1"] <= medians["all"], medians
