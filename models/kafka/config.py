"""The `[kafka]` scenario section: Apache Kafka 4.0 configuration names and defaults.

Real configuration names keep their meaning and their Kafka 4.0 default (dots become
underscores: `min.insync.replicas` is `min_insync_replicas`). Sub-sections follow where the
setting lives in Kafka: `[kafka.topic]` (topic-level / `log.*` broker defaults), `[kafka.broker]`
(server.properties), `[kafka.producer]` (ProducerConfig), `[kafka.consumer]` (ConsumerConfig, in
config_consumer.py).
Model parameters that are not Kafka settings (CPU cost of a request, page cache size) say so in
their description and carry their unit in their name.

Two deliberate departures from the broker's fallbacks, because a topic is created by the
scenario as `kafka-topics.sh --create --partitions 6 --replication-factor 3` would: `partitions`
defaults to 6 and `replication_factor` to 3 (`num.partitions` and `default.replication.factor`
are both 1 in Kafka 4.0, which would make every default run an unreplicated single partition).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.kafka.config_consumer import ConsumerConfig
from simulator.systems import SystemConfig

INT_MAX = 2**31 - 1  # Java Integer.MAX_VALUE, Kafka's "retries" default
MiB = 1024 * 1024


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class TopicConfig(_Section):
    """The topic every producer writes to and every consumer reads (topic-level configs)."""

    partitions: int = Field(
        6, ge=1, le=10_000, description="Partitions of the topic (kafka-topics --partitions)."
    )
    replication_factor: int = Field(
        3,
        ge=1,
        le=100,
        description="Replicas of each partition (kafka-topics --replication-factor).",
    )
    min_insync_replicas: int = Field(
        1,
        ge=1,
        le=100,
        description="min.insync.replicas: with acks=all, a write needs at least this many "
        "in-sync replicas, else NotEnoughReplicas (an error, not a loss).",
    )
    unclean_leader_election_enable: bool = Field(
        False,
        description="unclean.leader.election.enable: elect an out-of-sync replica when no "
        "in-sync one is alive (availability over durability; truncates acknowledged records).",
    )
    retention_ms: float = Field(
        604_800_000.0,
        ge=1,
        description="retention.ms: whole segments whose newest record is older are deleted "
        "(7 days).",
    )
    retention_bytes: int | None = Field(
        None,
        ge=1,
        description="retention.bytes: oldest segments are deleted while the log is larger; "
        "None = -1 in Kafka (no size limit).",
    )
    segment_bytes: int = Field(
        1024 * MiB,
        ge=1024,
        description="segment.bytes: the active segment rolls when full (1 GiB); only closed "
        "segments are deleted by retention.",
    )
    segment_ms: float = Field(
        604_800_000.0, ge=1, description="segment.ms: the active segment rolls after this age."
    )
    cleanup_policy: Literal["delete", "compact"] = Field(
        "delete",
        description="cleanup.policy: delete (retention removes old segments) or compact (the log "
        "cleaner keeps the latest record per key in closed segments; no time or size retention).",
    )
    min_cleanable_dirty_ratio: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="min.cleanable.dirty.ratio: the cleaner compacts a log once the records "
        "written since its last pass are at least this share of the log (the model counts "
        "records, Kafka bytes).",
    )
    delete_retention_ms: float = Field(
        86_400_000.0,
        ge=0,
        description="delete.retention.ms: a tombstone (null value) is removed by the first "
        "cleaning pass this long after the pass that first cleaned it (1 day).",
    )


class BrokerConfig(_Section):
    """server.properties of every broker (plus the model's capacity parameters)."""

    num_network_threads: int = Field(
        3,
        ge=1,
        le=256,
        description="num.network.threads: threads reading requests, writing responses.",
    )
    num_io_threads: int = Field(
        8, ge=1, le=1024, description="num.io.threads: request handler threads (append, fetch)."
    )
    queued_max_requests: int = Field(
        500,
        ge=1,
        le=1_000_000,
        description="queued.max.requests: requests waiting for an I/O thread before the "
        "network threads stop reading new ones.",
    )
    replica_lag_time_max_ms: float = Field(
        30_000.0,
        ge=1,
        description="replica.lag.time.max.ms: a follower that has not caught up to the leader's "
        "log end for this long is removed from the ISR.",
    )
    broker_session_timeout_ms: float = Field(
        9_000.0,
        ge=1,
        description="broker.session.timeout.ms: the controller fences a broker whose heartbeats "
        "stopped for this long, and elects new leaders for its partitions.",
    )
    broker_heartbeat_interval_ms: float = Field(
        2_000.0,
        ge=1.0,
        description="broker.heartbeat.interval.ms: broker -> controller heartbeats (>= 1 ms).",
    )
    replica_fetch_max_bytes: int = Field(
        1 * MiB, ge=1, description="replica.fetch.max.bytes: per partition in one follower fetch."
    )
    replica_fetch_response_max_bytes: int = Field(
        10 * MiB,
        ge=1,
        description="replica.fetch.response.max.bytes: whole follower fetch response.",
    )
    replica_fetch_wait_max_ms: float = Field(
        500.0,
        ge=1,
        description="replica.fetch.wait.max.ms: a follower fetch with no new data waits this "
        "long at the leader.",
    )
    replica_fetch_backoff_ms: float = Field(
        1_000.0, ge=0, description="replica.fetch.backoff.ms: pause after a failed follower fetch."
    )
    replica_socket_timeout_ms: float = Field(
        30_000.0, ge=1, description="replica.socket.timeout.ms: follower fetch request timeout."
    )
    log_flush_interval_messages: int | None = Field(
        None,
        ge=1,
        description="log.flush.interval.messages: fsync a partition log after this many "
        "appended records. None = Long.MAX_VALUE (Kafka's default: never fsync, rely on "
        "replication; the OS writes dirty pages back after ~30 s).",
    )
    replica_high_watermark_checkpoint_interval_ms: float = Field(
        5_000.0,
        ge=1,
        description="replica.high.watermark.checkpoint.interval.ms: how often the HW is saved; "
        "a restarted broker starts from the saved HW.",
    )
    log_retention_check_interval_ms: float = Field(
        300_000.0,
        ge=1,
        description="log.retention.check.interval.ms: how often retention deletes old segments.",
    )
    eligible_leader_replicas_enable: bool = Field(
        False,
        description="eligible.leader.replicas.enable (KIP-966; default on for new clusters from "
        "4.1, off in 4.0): replicas that leave the ISR while caught up to the HW stay eligible "
        "for a clean election, and a replica with an unclean shutdown is not trusted.",
    )
    group_initial_rebalance_delay_ms: float = Field(
        3_000.0,
        ge=0,
        description="group.initial.rebalance.delay.ms: the coordinator waits this long for more "
        "members before the first rebalance of an empty group.",
    )
    offsets_topic_num_partitions: int = Field(
        50,
        ge=1,
        le=1_000,
        description="offsets.topic.num.partitions: the group's coordinator leads partition "
        "hash(group.id) % this of __consumer_offsets.",
    )
    offsets_topic_replication_factor: int = Field(
        3,
        ge=1,
        le=100,
        description="offsets.topic.replication.factor: replicas of __consumer_offsets "
        "(capped at the number of brokers).",
    )
    log_cleaner_backoff_ms: float = Field(
        15_000.0,
        ge=1,
        description="log.cleaner.backoff.ms: the log cleaner checks the compacted logs for one "
        "dirty enough this often.",
    )
    transaction_state_log_num_partitions: int = Field(
        50,
        ge=1,
        description="transaction.state.log.num.partitions: a transactional.id's coordinator leads "
        "partition hash(transactional.id) % this of __transaction_state.",
    )
    transaction_state_log_replication_factor: int = Field(
        3,
        ge=1,
        description="transaction.state.log.replication.factor: replicas of __transaction_state "
        "(capped at the number of brokers).",
    )
    transaction_abort_timed_out_transaction_cleanup_interval_ms: float = Field(
        10_000.0,
        ge=1,
        description="transaction.abort.timed.out.transaction.cleanup.interval.ms: how often the "
        "transaction coordinator aborts transactions older than their transaction.timeout.ms.",
    )
    # --- model parameters (not Kafka settings) ---
    request_cpu_ms: float = Field(
        0.02,
        ge=0,
        description="Model parameter: CPU time of one request in an I/O thread (validation, "
        "append or read, purgatory bookkeeping), in ms; a network thread spends a quarter of "
        "it reading and parsing the request.",
    )
    cpu_ms_per_mb: float = Field(
        0.5,
        ge=0,
        description="Model parameter: CPU time per MB of records handled (CRC check, copy into "
        "the page cache), in ms; 0.5 ms/MB is ~2 GB/s.",
    )
    page_cache_bytes: int = Field(
        4 * 1024 * MiB,
        ge=0,
        description="Model parameter: bytes of recent log data the OS page cache holds; a "
        "consumer reading older data waits for the disk.",
    )


Acks = Literal["all", "1", "0"]


class ProducerConfig(_Section):
    """ProducerConfig of every producing client (Kafka 4.0 defaults)."""

    acks: Acks = Field(
        "all",
        description='acks: "0" = acknowledged when sent, "1" = when the leader appended, '
        '"all" = when every in-sync replica has it (default since 3.0). -1, 0, 1 also accepted.',
    )
    enable_idempotence: bool | None = Field(
        None,
        description="enable.idempotence: producer id + sequence numbers let the leader drop a "
        "retried batch it already has. None = Kafka's default: true (since 3.0), but off when "
        "acks != all, retries = 0 or max.in.flight > 5 were chosen (as Kafka does when the "
        "setting was not given explicitly).",
    )
    linger_ms: float = Field(
        5.0,
        ge=0,
        description="linger.ms: wait up to this long for more records before sending a batch "
        "(5 since Kafka 4.0, 0 before).",
    )
    batch_size: int = Field(
        16_384,
        ge=1,
        description="batch.size: bytes of one partition's batch; full batches go at once.",
    )
    buffer_memory: int = Field(
        32 * MiB,
        ge=1024,
        description="buffer.memory: bytes of records waiting or in flight; when full, send() "
        "blocks.",
    )
    max_block_ms: float = Field(
        60_000.0, ge=0, description="max.block.ms: send() blocked longer than this fails."
    )
    max_request_size: int = Field(
        1 * MiB, ge=1024, description="max.request.size: bytes of one produce request."
    )
    max_in_flight_requests_per_connection: int = Field(
        5,
        ge=1,
        le=1000,
        description="max.in.flight.requests.per.connection: unanswered requests per broker.",
    )
    request_timeout_ms: float = Field(
        30_000.0, ge=1, description="request.timeout.ms: a request without answer is retried."
    )
    delivery_timeout_ms: float = Field(
        120_000.0,
        ge=1,
        description="delivery.timeout.ms: a record not acknowledged this long after send() fails.",
    )
    retries: int = Field(
        INT_MAX, ge=0, le=INT_MAX, description="retries: retriable errors are retried this often."
    )
    retry_backoff_ms: float = Field(100.0, ge=0, description="retry.backoff.ms: first retry delay.")
    retry_backoff_max_ms: float = Field(
        1_000.0, ge=0, description="retry.backoff.max.ms: retry delays double up to this (KIP-580)."
    )
    partitioner: Literal["default", "sticky"] = Field(
        "default",
        description="default: records are keyed, partition = hash(key) % partitions (Kafka's "
        "murmur2); sticky: records sent without key, stick to one partition per batch (KIP-794) "
        "so per-key order is not kept.",
    )

    tombstone_ratio: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Model parameter: share of records sent with a null value (a delete of their "
        "key, a tombstone), chosen by a hash of the message id; matters with "
        "cleanup_policy = compact.",
    )

    @field_validator("acks", mode="before")
    @classmethod
    def _acks(cls, value: Any) -> Any:
        mapping = {-1: "all", "-1": "all", 1: "1", 0: "0"}
        if isinstance(value, int | str) and not isinstance(value, bool):
            return mapping.get(value, value)
        return value

    @property
    def idempotent(self) -> bool:
        """Whether idempotence is on (Kafka's resolution of the default)."""
        if self.enable_idempotence is not None:
            return self.enable_idempotence
        return (
            self.acks == "all"
            and self.retries > 0
            and self.max_in_flight_requests_per_connection <= 5
        )


class KafkaConfig(SystemConfig):
    """Apache Kafka 4.0 (KRaft): brokers, one topic, producers, a consumer group"""

    brokers: int = Field(3, ge=1, le=100, description="Brokers (broker0, broker1, ...).")
    engine: Literal["auto", "events"] = Field(
        "auto",
        description="Simulator setting, not a Kafka one. auto: a run without faults is planned "
        "in spans with numpy, many times faster, as long as it stays in the steady state (no "
        "request waits 0.1 ms for a broker thread, no batch fills up, no producer blocks); "
        "when it leaves it, the run is simulated event by event from the start, with exactly "
        "the result of events (the manifest says why). events: always event by event.",
    )
    topic: TopicConfig = Field(default_factory=TopicConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    producer: ProducerConfig = Field(default_factory=ProducerConfig)
    consumer: ConsumerConfig = Field(default_factory=ConsumerConfig)

    @model_validator(mode="after")
    def _cross_checks(self) -> KafkaConfig:
        problems: list[str] = []
        topic, producer = self.topic, self.producer
        if topic.replication_factor > self.brokers:
            problems.append(
                f"kafka.topic.replication_factor: {topic.replication_factor} is larger than "
                f"kafka.brokers ({self.brokers}); allowed: 1..brokers"
            )
        if topic.min_insync_replicas > topic.replication_factor:
            problems.append(
                f"kafka.topic.min_insync_replicas: {topic.min_insync_replicas} is larger than "
                f"kafka.topic.replication_factor ({topic.replication_factor}); "
                "allowed: 1..replication_factor"
            )
        # ProducerConfig: "delivery.timeout.ms should be equal to or larger than linger.ms +
        # request.timeout.ms" (a ConfigException in Kafka).
        floor = producer.linger_ms + producer.request_timeout_ms
        if producer.delivery_timeout_ms < floor:
            problems.append(
                f"kafka.producer.delivery_timeout_ms: {producer.delivery_timeout_ms:g} is smaller "
                f"than linger_ms + request_timeout_ms ({floor:g}); allowed: >= {floor:g}"
            )
        if producer.enable_idempotence:
            if producer.acks != "all":
                problems.append(
                    f"kafka.producer.enable_idempotence: true needs acks = all, not "
                    f"{producer.acks!r}; allowed: acks=all, or enable_idempotence=false"
                )
            if producer.max_in_flight_requests_per_connection > 5:
                problems.append(
                    "kafka.producer.enable_idempotence: true needs "
                    "max_in_flight_requests_per_connection <= 5, not "
                    f"{producer.max_in_flight_requests_per_connection}; allowed: 1..5"
                )
            if producer.retries == 0:
                problems.append(
                    "kafka.producer.enable_idempotence: true needs retries > 0; "
                    "allowed: retries >= 1, or enable_idempotence=false"
                )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def broker_names(self) -> list[str]:
        return [f"broker{i}" for i in range(self.brokers)]

    def node_names(self) -> list[str]:
        # Clients are named producer0.. and consumer0.. after [workload]; the section cannot see
        # the workload, so they are reachable through roles (producers, consumers, a_consumer).
        return [*self.broker_names(), "controller"]

    def roles(self) -> list[str]:
        return list(ROLES)


__all__ = ["BrokerConfig", "ConsumerConfig", "KafkaConfig", "ProducerConfig", "TopicConfig"]


ROLES: dict[str, str] = {
    "leader": "the broker leading partition 0 when the fault fires",
    "primary": "same as leader (the name the Redis model uses, for comparisons)",
    "a_follower": "a broker following partition 0 (in the ISR if one is)",
    "a_replica": "same as a_follower",
    "followers": "every broker following partition 0",
    "replicas": "same as followers (the name the Redis model uses, for comparisons)",
    "all_servers": "every broker",
    "all_brokers": "every broker",
    "controller": "the KRaft controller",
    "a_consumer": "the first consumer",
    "consumers": "every consumer",
    "producers": "every producer",
    "clients": "every producer and consumer",
    "client_link": "every producer and consumer (cut or delay the client side of the network)",
}
