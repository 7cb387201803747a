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
