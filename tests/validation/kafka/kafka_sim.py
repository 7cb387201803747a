"""The real-Kafka cases through the simulator: the same settings, the same fault schedule.

`kafka_section` builds the scenario's `[kafka]` section from exactly what the real side runs
with: the broker settings of the cluster (`kafka_cluster.CLUSTER_SETTINGS`), the topic's own
configs, and the producer's `ProducerSettings` (whose field names are the model's). Settings the
model has no field for are listed by name in `NOT_MODELLED`, so nothing is dropped by accident
and a new real setting fails loudly until it is mapped or listed.

Each `*_scenario` function mirrors one test's timeline; the tests assert the same qualitative
outcome on both sides (docs/validation.md, "## Kafka").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafka_clients import ConsumerSettings, ProducerSettings
from kafka_cluster import CLUSTER_SETTINGS

# Real setting -> (model sub-section, field). Topic-level settings go to [kafka.topic].
MODELLED: dict[str, tuple[str, str]] = {
    "broker.session.timeout.ms": ("broker", "broker_session_timeout_ms"),
    "broker.heartbeat.interval.ms": ("broker", "broker_heartbeat_interval_ms"),
    "replica.lag.time.max.ms": ("broker", "replica_lag_time_max_ms"),
    "num.network.threads": ("broker", "num_network_threads"),
    "num.io.threads": ("broker", "num_io_threads"),
    "unclean.leader.election.enable": ("topic", "unclean_leader_election_enable"),
    "min.insync.replicas": ("topic", "min_insync_replicas"),
    "group.initial.rebalance.delay.ms": ("broker", "group_initial_rebalance_delay_ms"),
    "offsets.topic.num.partitions": ("broker", "offsets_topic_num_partitions"),
    "offsets.topic.replication.factor": ("broker", "offsets_topic_replication_factor"),
}

# Real settings the model has no field for, and why that does not matter to the cases.
NOT_MODELLED: dict[str, str] = {
    "group.min.session.timeout.ms": "a lower bound the broker checks session.timeout.ms "
    "against; the model accepts any session timeout",
    "transaction.state.log.num.partitions": "no transactions",
    "transaction.state.log.replication.factor": "no transactions",
    "transaction.state.log.min.isr": "no transactions",
    "default.replication.factor": "the scenario gives the topic's replication factor",
    "num.partitions": "the scenario gives the topic's partitions",
    "auto.create.topics.enable": "the scenario's one topic always exists",
    "auto.leader.rebalance.enable": "the model never moves leaders back to the preferred one",
    "num.replica.fetchers": "the model has one fetcher per follower and leader",
}

BOOLEAN_SETTINGS = frozenset({"unclean.leader.election.enable"})


def _value(name: str, text: str) -> Any:
    if name in BOOLEAN_SETTINGS:
        return text.strip().lower() == "true"
    number = float(text)
    return int(number) if number.is_integer() else number


def kafka_section(
    producer: ProducerSettings,
    topic_config: Mapping[str, str] | None = None,
    *,
    partitions: int = 1,
    replication_factor: int = 3,
    brokers: int = 3,
) -> dict[str, Any]:
    """The `[kafka]` section for a real case: cluster settings, then the topic's overrides."""
    section: dict[str, Any] = {
        "brokers": brokers,
        "topic": {"partitions": partitions, "replication_factor": replication_factor},
        "broker": {},
        "producer": producer.as_dict(),
    }
    for name, text in {**CLUSTER_SETTINGS, **(topic_config or {})}.items():
        if name in NOT_MODELLED:
            continue
        if name not in MODELLED:
            raise KeyError(f"real setting {name!r} is neither mapped to the model nor listed")
        part, field_name = MODELLED[name]
        section[part][field_name] = _value(name, text)
    return section


def scenario(
    kafka: dict[str, Any],
    *,
    duration_s: float,
    rate_per_s: float,
    faults: list[dict[str, Any]] | None = None,
    drain_s: float = 30.0,
    consumers: int = 1,
) -> dict[str, Any]:
    """One producer sending 100-byte records at a constant rate, as the real producer does."""
    return {
        "scenario": {
            "name": "kafka-validation",
            "duration_s": duration_s,
            "warmup_s": 0.0,
            "drain_s": drain_s,
        },
        "system": {"kind": "kafka"},
        "workload": {
            "arrival": "constant",
            "rate_per_s": rate_per_s,
            "value_bytes": 100,
            "producers": 1,
            "consumers": consumers,
        },
        "kafka": kafka,
        "faults": faults or [],
    }


# --- case (a): leader crash while the followers are frozen -------------------------------------


def failover_scenario(
    producer: ProducerSettings,
    min_insync_replicas: int,
    *,
    rate_per_s: float,
    steady_s: float,
    frozen_s: float,
) -> dict[str, Any]:
    """Followers paused from `steady_s` for `frozen_s`, the leader crashed as they resume."""
    crash_at = steady_s + frozen_s
    topic = {
        "min.insync.replicas": str(min_insync_replicas),
        "unclean.leader.election.enable": "false",
    }
    return scenario(
        kafka_section(producer, topic),
        duration_s=crash_at + 6.0,
        rate_per_s=rate_per_s,
        faults=[
            {"at_s": steady_s, "kind": "pause", "target": "followers", "duration_s": frozen_s},
            # restarted after the failover, as the real test's heal does
            {"at_s": crash_at, "kind": "crash", "target": "leader", "duration_s": 4.0},
        ],
    )


@dataclass
class SimLoss:
    """Acknowledged-then-lost messages of a simulated run, and when they were sent."""

    acked: int
    lost: int
    lost_by_cause: dict[str, int]
    window: int  # messages whose intended send time is in [start_ms, end_ms)
    lost_in_window: int
    failed: int


def sim_loss(result: Any, start_ms: float, end_ms: float) -> SimLoss:
    messages = result.messages
    summary = result.summary["messages"]
    in_window = (messages.intended_ms >= start_ms) & (messages.intended_ms < end_ms)
    lost = messages.fate == "lost"
    return SimLoss(
        acked=int(summary["acked"]),
        lost=int(summary["lost"]),
        lost_by_cause=dict(summary["lost_by_cause"]),
        window=int(in_window.sum()),
        lost_in_window=int((lost & in_window).sum()),
        failed=int(summary["failed"]),
    )


# --- case (b): two of three brokers down ---------------------------------------------------------


def two_down_scenario(producer: ProducerSettings, *, rate_per_s: float) -> dict[str, Any]:
    """Both followers crash at 1 s and come back at 9 s; acks=all needs 2 in sync."""
    return scenario(
        kafka_section(producer, {"min.insync.replicas": "2"}),
        duration_s=12.0,
        rate_per_s=rate_per_s,
        faults=[{"at_s": 1.0, "kind": "crash", "target": "followers", "duration_s": 8.0}],
    )


# --- case (d): produce -> ack latency by acks ------------------------------------------------------


def latency_scenario(producer: ProducerSettings, *, rate_per_s: float) -> dict[str, Any]:
    """A healthy cluster at a light load: the latency is the acknowledgement path alone."""
    return scenario(
        kafka_section(producer, {"min.insync.replicas": "2"}),
        duration_s=5.0,
        rate_per_s=rate_per_s,
        drain_s=5.0,
    )


# --- case (c): a consumer with auto-commit crashes; its successor redelivers ----------------------


def consumer_section(settings: ConsumerSettings) -> dict[str, Any]:
    """The model's `[kafka.consumer]` for the real consumer's settings.

    librdkafka's poll() hands the application one record at a time and, with offsets stored
    after processing, auto-commit commits what was processed; the model follows the Java client
    (auto-commit commits the offsets of the previous poll), so `max_poll_records = 1` makes
    the two commit the same thing. `group_protocol` must be classic (the model's protocol) and
    `isolation_level` read_uncommitted (the model has no transactions).
    """
    if settings.group_protocol != "classic" or settings.isolation_level != "read_uncommitted":
        raise ValueError(f"not modelled: {settings}")
    if not settings.store_offsets_after_processing:
        raise ValueError("the model's auto-commit commits processed records only")
    return {
        "enable_auto_commit": settings.enable_auto_commit,
        "auto_commit_interval_ms": float(settings.auto_commit_interval_ms),
        "auto_offset_reset": settings.auto_offset_reset,
        "session_timeout_ms": float(settings.session_timeout_ms),
        "heartbeat_interval_ms": float(settings.heartbeat_interval_ms),
        "max_poll_interval_ms": float(settings.max_poll_interval_ms),
        "partition_assignment_strategy": "range",
        "max_poll_records": 1,
    }


def consumer_crash_scenario(
    producer: ProducerSettings,
    consumer: ConsumerSettings,
    *,
    records: int,
    processing_ms: float,
    crash_after_commit_s: float,
) -> dict[str, Any]:
    """`records` produced in the first second; one consumer processing `processing_ms` each
    (so it is still busy with the backlog), killed `crash_after_commit_s` after its second
    auto-commit and restarted at once: the restarted process is a new member, admitted when
    the old member's session expires, and resumes at the committed offset."""
    interval_s = consumer.auto_commit_interval_ms / 1000.0
    crash_at_s = 2 * interval_s + crash_after_commit_s
    kafka = kafka_section(producer, {"min.insync.replicas": "2"})
    kafka["consumer"] = consumer_section(consumer)
    data = scenario(
        kafka,
        duration_s=crash_at_s + 1.0,
        rate_per_s=float(records),
        faults=[
            {
                "at_s": crash_at_s,
                "kind": "consumer_crash",
                "target": "a_consumer",
                "duration_s": 0.1,
            }
        ],
        drain_s=records * processing_ms / 1000.0 + 60.0,
    )
    data["workload"]["processing_ms"] = processing_ms
    data["workload"]["max_messages"] = records  # the real side produces them, then consumes
    return data
