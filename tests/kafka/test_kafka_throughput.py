"""Broker capacity: throughput grows with batch size, brokers and partitions until a broker
resource saturates; linger.ms makes requests fewer and larger.

The brokers here are deliberately small (one network and one I/O thread, 5 ms of CPU per
request: ~200 requests/s each) so that saturation is reached with a few thousand records per
second. Each run offers far more than the slow configurations can take, so the acknowledged
rate measures capacity, not the offered load.
"""

from __future__ import annotations

from typing import Any

from kafka_helpers import run_kafka, scenario

SMALL_BROKER = {
    "scenario__duration_s": 2.0,
    "scenario__warmup_s": 0.5,
    "scenario__drain_s": 2.0,
    "workload__producers": 1,
    "workload__consumers": 1,
    "kafka__topic__replication_factor": 1,
    "kafka__topic__min_insync_replicas": 1,
    "kafka__broker__num_io_threads": 1,
    "kafka__broker__num_network_threads": 1,
    "kafka__broker__request_cpu_ms": 5.0,
}


def measure(**settings: Any) -> dict[str, float]:
    merged = {**SMALL_BROKER, "kafka__brokers": 1, "kafka__topic__partitions": 4, **settings}
    result = run_kafka(scenario(**merged))
    ts = result.timeseries
    steady = ts["t_ms"].between(200.0, 1800.0)
    return {
        "acked_per_s": result.summary["throughput"]["acked_per_s"],
        "requests_per_s": float(ts.loc[steady, "produce_requests_per_s"].mean()),
        "queue_ms": float(ts.loc[steady, "request_queue_time_ms"].max()),
    }


def test_throughput_rises_with_batch_size_until_it_meets_the_offered_load() -> None:
    # ~200 requests/s x 4 partitions x records per batch: 512 bytes hold 3 records of 128 B
    # (2.4k/s), 2048 bytes hold 15 (12k/s = the offered load, so the curve flattens there)
    offered = 12_000.0
    rates = [
        measure(kafka__producer__batch_size=b, workload__rate_per_s=offered)
        for b in (512, 2048, 8192)
    ]
    acked = [r["acked_per_s"] for r in rates]
    assert acked[0] < 0.3 * offered
    assert acked[1] > 2.5 * acked[0]
    assert acked[2] >= 0.97 * offered  # all that is offered: the broker is no longer the limit


def test_throughput_rises_with_brokers_and_partitions_while_brokers_are_saturated() -> None:
    def acked(brokers: int, partitions: int) -> float:
        return measure(
            kafka__brokers=brokers,
            kafka__topic__partitions=partitions,
            kafka__producer__batch_size=1024,
            workload__rate_per_s=30_000.0,
        )["acked_per_s"]

    one = acked(1, 1)  # one batch per request
    one_broker_four_partitions = acked(1, 4)  # four batches per request
    three_brokers = acked(3, 12)  # three brokers' worth of requests
    assert one_broker_four_partitions > 3 * one
    assert three_brokers > 2.5 * one_broker_four_partitions


def test_linger_sends_fewer_larger_requests_for_the_same_throughput() -> None:
    eager = measure(kafka__producer__linger_ms=0.0, workload__rate_per_s=4_000.0)
    patient = measure(kafka__producer__linger_ms=20.0, workload__rate_per_s=4_000.0)
    assert abs(eager["acked_per_s"] - patient["acked_per_s"]) < 0.02 * eager["acked_per_s"]
    assert patient["requests_per_s"] < 0.3 * eager["requests_per_s"]


def test_a_saturated_broker_queues_requests() -> None:
    idle = measure(kafka__producer__linger_ms=20.0, workload__rate_per_s=1_000.0)
    busy = measure(
        kafka__producer__batch_size=512, workload__rate_per_s=12_000.0, workload__producers=8
    )
    assert idle["queue_ms"] < 0.1
    assert busy["queue_ms"] > 1.0
