"""Regression: periods that schedule simulated events must not be tiny (runs stay bounded)."""

from __future__ import annotations

import pytest

from simulator.scenario import ScenarioError, load_scenario


@pytest.mark.parametrize(
    ("scenario", "override", "field"),
    [
        (
            "kafka_acks_latency",
            "kafka.broker.broker_heartbeat_interval_ms=0.0001",
            "kafka.broker.broker_heartbeat_interval_ms",
        ),
        (
            "redis_slow_command",
            "redis.ops.slow_command_every_ms=0.0001",
            "redis.ops.slow_command_every_ms",
        ),
    ],
)
def test_a_sub_millisecond_period_is_refused(scenario: str, override: str, field: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(scenario, [override])
    assert info.value.problems[0].startswith(f"{field}: 0.0001 is not allowed")


@pytest.mark.parametrize(
    ("scenario", "field"),
    [
        # Kafka's time settings are integer milliseconds: nothing below 1 ms can be configured
        ("kafka_consumer_crash_auto_commit", "kafka.consumer.heartbeat_interval_ms"),
        ("kafka_consumer_crash_auto_commit", "kafka.consumer.auto_commit_interval_ms"),
        ("kafka_acks_latency", "kafka.broker.replica_fetch_wait_max_ms"),
        ("kafka_acks_latency", "kafka.topic.segment_ms"),
        # Redis: down-after-milliseconds is an integer; XAUTOCLAIM's period is the model's
        ("redis_sentinel_split_brain", "redis.sentinel.down_after_milliseconds"),
        ("redis_stream_consumer_crash", "redis.ops.xautoclaim_every_ms"),
        # a round trip shorter than the 10 us floor made a zero fetch.max.wait.ms spin forever
        ("kafka_acks_latency", "network.rtt_ms"),
    ],
)
def test_periods_that_hung_a_run_are_refused_below_their_floor(scenario: str, field: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(scenario, [f"{field}=0.001"])
    assert info.value.problems[0].startswith(f"{field}: 0.001 is not allowed")
