"""acks: produce->ack latency orders 0 < 1 < all; produce->deliver is the same for all three."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kafka_helpers import run_kafka, scenario


@pytest.fixture(scope="module")
def latencies() -> dict[str, dict]:
    out = {}
    for acks in ("0", "1", "all"):
        result = run_kafka(
            scenario(
                scenario__duration_s=3.0,
                workload__rate_per_s=5000.0,
                kafka__producer__acks=acks,
            )
        )
        out[acks] = result.summary["latency_ms"]
    return out


def test_ack_latency_orders_acks0_below_acks1_below_acks_all(latencies: dict[str, dict]) -> None:
    # 15k records per run: the median is known to well under 1% (its standard error is
    # ~1.25 sigma / sqrt(n)); the gaps are a network round trip (0.2 ms) and a follower fetch
    # round trip (~0.2 ms) on a ~3 ms median dominated by linger.ms = 5
    ack = {acks: latencies[acks]["ack"]["p50"] for acks in latencies}
    assert ack["0"] < ack["1"] < ack["all"]
    assert ack["1"] - ack["0"] > 0.1
    assert ack["all"] - ack["1"] > 0.1


def test_end_to_end_latency_is_about_the_same_for_all_acks(latencies: dict[str, dict]) -> None:
    # consumers only see records below the HW, which waits for the whole ISR whatever acks is
    e2e = [latencies[acks]["end_to_end"]["p50"] for acks in latencies]
    assert max(e2e) - min(e2e) < 0.05 * min(e2e)
    for acks in ("0", "1"):
        assert latencies[acks]["end_to_end"]["p50"] > latencies[acks]["ack"]["p50"]


def test_fetch_min_bytes_makes_consumers_wait_for_fuller_answers() -> None:
    # 16 KiB per fetch at ~667 records/s of ~128 B per partition is ~0.2 s of records: the
    # consumer waits for them (or fetch.max.wait.ms = 500), so end-to-end latency grows to
    # ~100 ms on average, far above the few milliseconds with fetch.min.bytes = 1
    eager = run_kafka(scenario(scenario__duration_s=3.0))
    patient = run_kafka(scenario(scenario__duration_s=3.0, kafka__consumer__fetch_min_bytes=16384))
    fast = eager.summary["latency_ms"]["end_to_end"]["p50"]
    slow = patient.summary["latency_ms"]["end_to_end"]["p50"]
    assert slow > 10 * fast
    assert patient.summary["messages"]["delivered"] == patient.summary["messages"]["produced"]


def _delivery_after_ack_p999(data: dict[str, Any]) -> float:
    """p99.9 of each message's delivery time minus its acknowledgement time (ms)."""
    m = run_kafka(data).messages
    return float(np.percentile((m["deliver_ms"] - m["ack_ms"]).to_numpy(), 99.9))


def test_consumers_are_answered_when_their_fetch_arrives_not_at_the_next_hw_advance() -> None:
    """A consumer's fetch that reaches the leader just after the high watermark moved is
    answered at once with the new records. (It was answered lazily at the next advance, and
    the leader's network threads, by then busy with later work, held the answer back to that
    moment: up to a whole gap between two advances, 8 ms at 1000 records/s per partition.)
    Delivery follows the acknowledgement closely: both wait for the high watermark, then one
    network hop to the consumer or the producer."""
    data = scenario(
        **{
            "kafka__engine": "events",
            "workload__rate_per_s": 3000.0,
            "workload__processing_ms": 0.1,
            "scenario__duration_s": 4.0,
        }
    )
    # processing 0.1 ms per record, a few records per answer: well under 2 ms
    assert _delivery_after_ack_p999(data) < 2.0


def test_a_consumer_of_several_partitions_does_not_hold_one_answer_for_another() -> None:
    """With no processing time, records are returned by poll() when their answer arrives:
    answers from several partitions (several leaders) do not wait for each other. (They were
    processed in the order the leaders' answers were computed, so an answer could start when
    a later one, computed first, had arrived.)"""
    data = scenario(
        **{
            "kafka__engine": "events",
            "kafka__brokers": 5,
            "kafka__topic": {"partitions": 7, "replication_factor": 2, "min_insync_replicas": 1},
            "workload__rate_per_s": 5000.0,
            "workload__consumers": 2,
            "scenario__duration_s": 4.0,
        }
    )
    assert _delivery_after_ack_p999(data) < 1.0
