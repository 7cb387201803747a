"""The [kafka] section: Kafka 4.0 names and defaults, cross-field checks, roles."""

from __future__ import annotations

import pytest

from simulator import ScenarioError, load_scenario
from simulator.runner import build


def kafka(**section: object) -> dict:
    return {"system": {"kind": "kafka"}, "kafka": section}


def test_defaults_are_kafka_4_0() -> None:
    cfg = load_scenario(kafka()).system_config
    assert cfg.brokers == 3
    assert cfg.producer.acks == "all" and cfg.producer.idempotent
    assert cfg.producer.linger_ms == 5.0 and cfg.producer.batch_size == 16384
    assert cfg.producer.max_in_flight_requests_per_connection == 5
    assert cfg.producer.delivery_timeout_ms == 120_000.0
    assert cfg.topic.min_insync_replicas == 1
    assert cfg.topic.unclean_leader_election_enable is False
    assert cfg.broker.replica_lag_time_max_ms == 30_000.0
    assert cfg.broker.broker_session_timeout_ms == 9_000.0
    assert cfg.broker.log_flush_interval_messages is None  # Long.MAX: never fsync
    assert cfg.broker.eligible_leader_replicas_enable is False
    assert cfg.consumer.max_poll_records == 500


def test_min_insync_larger_than_replication_factor_is_refused_with_a_readable_message() -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario(kafka(topic={"replication_factor": 2, "min_insync_replicas": 3}))
    assert (
        "kafka.topic.min_insync_replicas: 3 is larger than kafka.topic.replication_factor (2); "
        "allowed: 1..replication_factor" in err.value.problems
    )


def test_replication_factor_larger_than_brokers_is_refused() -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario(kafka(brokers=2, topic={"replication_factor": 3, "min_insync_replicas": 1}))
    assert any(
        p.startswith("kafka.topic.replication_factor: 3 is larger than kafka.brokers (2)")
        for p in err.value.problems
    )


@pytest.mark.parametrize(
    ("given", "meant"), [(-1, "all"), ("-1", "all"), (1, "1"), (0, "0"), ("all", "all")]
)
def test_acks_accepts_kafka_spellings(given: object, meant: str) -> None:
    assert load_scenario(kafka(producer={"acks": given})).system_config.producer.acks == meant


def test_idempotence_follows_kafkas_default_resolution() -> None:
    # not set: on with acks=all, silently off with acks=1 (Kafka 3.2+)
    assert not load_scenario(kafka(producer={"acks": "1"})).system_config.producer.idempotent
    with pytest.raises(ScenarioError) as err:
        load_scenario(kafka(producer={"acks": "1", "enable_idempotence": True}))
    assert any("enable_idempotence: true needs acks = all" in p for p in err.value.problems)


def test_delivery_timeout_must_cover_linger_and_request_timeout() -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario(kafka(producer={"delivery_timeout_ms": 1000.0}))
    assert any(p.startswith("kafka.producer.delivery_timeout_ms") for p in err.value.problems)


def test_unknown_key_names_the_allowed_keys() -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario(kafka(topic={"min_isr": 2}))
    text = "\n".join(err.value.problems)
    assert "kafka.topic.min_isr" in text and "min_insync_replicas" in text


def test_override_with_set_syntax() -> None:
    spec = load_scenario("kafka_acks_latency", ['kafka.producer.acks="1"'])
    assert spec.system_config.producer.acks == "1"


def test_roles_resolve_to_the_current_leader_and_its_followers() -> None:
    spec = load_scenario(kafka(topic={"partitions": 3, "replication_factor": 3}))
    _ctx, model = build(spec)
    assert model.resolve_target("leader") == ["broker0"]
    assert model.resolve_target("followers") == ["broker1", "broker2"]
    assert model.resolve_target("a_replica") == ["broker1"]
    assert model.resolve_target("all_servers") == ["broker0", "broker1", "broker2"]
    assert model.resolve_target("controller") == ["controller"]
    assert model.resolve_target("a_consumer") == ["consumer0"]
    assert model.resolve_target("client_link") == ["producer0", "consumer0"]
    for role in spec.system_config.roles():
        assert isinstance(model.resolve_target(role), list)
