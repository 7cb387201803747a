"""The `[kafka.consumer]` section: ConsumerConfig of the group's consumers (Kafka 4.0 defaults,
classic group protocol), and the model parameters of the application loop they run (commit mode,
the transactional pipeline). Kept apart from config.py, which re-exports it, to keep each module
one section's worth of fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MiB = 1024 * 1024


Assignor = Literal["range", "roundrobin", "sticky", "cooperative-sticky"]
ManualCommit = Literal["sync_after_processing", "async_after_processing", "before_processing"]


class ConsumerConfig(BaseModel):
    """ConsumerConfig of the group's consumers (Kafka 4.0 defaults, classic group protocol)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    fetch_min_bytes: int = Field(
        1,
        ge=1,
        description="fetch.min.bytes: the leader answers as soon as this much is available.",
    )
    fetch_max_wait_ms: float = Field(
        500.0, ge=0, description="fetch.max.wait.ms: longest wait for fetch.min.bytes."
    )
    fetch_max_bytes: int = Field(50 * MiB, ge=1, description="fetch.max.bytes: one fetch response.")
    max_partition_fetch_bytes: int = Field(
        1 * MiB, ge=1, description="max.partition.fetch.bytes: one partition in a fetch response."
    )
    max_poll_records: int = Field(
        500,
        ge=1,
        le=1_000_000,
        description="max.poll.records: records handed to the application per poll().",
    )
    request_timeout_ms: float = Field(
        30_000.0, ge=1, description="request.timeout.ms: a fetch without answer is sent again."
    )
    retry_backoff_ms: float = Field(
        100.0, ge=0, description="retry.backoff.ms: pause before asking for metadata again."
    )
    auto_offset_reset: Literal["latest", "earliest"] = Field(
        "latest",
        description="auto.offset.reset: where a consumer goes when its group has no committed "
        "offset for a partition or the committed offset is out of range.",
    )
    group_id: str = Field(
        "rksim-group",
        min_length=1,
        description="group.id: every consumer of the run is a member of this group.",
    )
    partition_assignment_strategy: Assignor = Field(
        "range",
        description="partition.assignment.strategy: range, roundrobin, sticky (eager "
        "rebalances: every member stops) or cooperative-sticky (only moved partitions stop). "
        "Kafka 4.0's default list [range, cooperative-sticky] resolves to range.",
    )
    session_timeout_ms: float = Field(
        45_000.0,
        ge=1,
        description="session.timeout.ms: the coordinator removes a member whose heartbeats "
        "stopped (crashed or paused) for this long.",
    )
    heartbeat_interval_ms: float = Field(
        3_000.0, ge=1, description="heartbeat.interval.ms: member -> coordinator heartbeats."
    )
    max_poll_interval_ms: float = Field(
        300_000.0,
        ge=1,
        description="max.poll.interval.ms: a member whose processing of one poll takes longer "
        "leaves the group and its partitions move.",
    )
    enable_auto_commit: bool = Field(
        True,
        description="enable.auto.commit: commit, every auto.commit.interval.ms at poll(), the "
        "offsets of the records the previous poll returned (processed by then).",
    )
    auto_commit_interval_ms: float = Field(
        5_000.0, ge=1, description="auto.commit.interval.ms: how often auto-commit commits."
    )
    exactly_once: bool = Field(
        False,
        description="Model parameter: the application is a consume-transform-produce loop with "
        "a transactional producer (transactional.id per consumer; one transaction per poll: "
        "its output records and sendOffsetsToTransaction commit or abort together, through a "
        "transaction coordinator and markers). Deliveries are what the downstream reader of the "
        "output topic sees (output_isolation_level). Needs enable_auto_commit = false.",
    )
    output_isolation_level: Literal["read_committed", "read_uncommitted"] = Field(
        "read_committed",
        description="Model parameter: isolation.level of the downstream reader of the pipeline's "
        "output topic (with exactly_once). read_committed reads below the last stable offset "
        "and skips aborted records; read_uncommitted (Kafka's consumer default) reads up to the "
        "high watermark, aborted records included.",
    )
    transaction_timeout_ms: float = Field(
        60_000.0,
        ge=1,
        description="transaction.timeout.ms of the pipeline's transactional producer: the "
        "coordinator aborts a transaction left open this long (its producer crashed).",
    )
    transactional_id_scope: Literal["partition", "consumer"] = Field(
        "partition",
        description="Model parameter (with exactly_once): partition = one transactional producer "
        "per input partition (transactional.id = group.id-partition, Kafka Streams' first "
        "exactly-once mode): a partition's new owner fences the old producer and aborts its "
        "open transaction at once. consumer = one per consumer (KIP-447, Kafka Streams' "
        "exactly_once_v2): zombies are fenced by the group generation when they commit, and a "
        "crashed consumer's open transaction is aborted only when it restarts or after "
        "transaction_timeout_ms, holding back the last stable offset of its output until then.",
    )
    manual_commit: ManualCommit = Field(
        "sync_after_processing",
        description="Model parameter (the application's loop, used when enable_auto_commit is "
        "false): commitSync / commitAsync after processing each poll (at-least-once), or commit "
        "the poll's offsets before processing it (at-most-once).",
    )

    @model_validator(mode="after")
    def _exactly_once_needs_manual_commits(self) -> ConsumerConfig:
        if self.exactly_once and self.enable_auto_commit:
            raise ValueError(
                "exactly_once: true needs enable_auto_commit = false (offsets are committed by "
                "the transaction); allowed: enable_auto_commit=false, or exactly_once=false"
            )
        return self
