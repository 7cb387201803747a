"""Messages exchanged by producers, brokers, followers and the controller, and error codes.

One object per request, carrying every batch or partition it covers (a produce request holds one
batch per partition its broker leads; a follower fetch covers every partition it follows from
that leader): requests are the unit of simulation events, records travel as numpy id arrays.
Error names are Kafka's (org.apache.kafka.common.protocol.Errors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from models.kafka.log import Piece

NONE = 0
NOT_LEADER_OR_FOLLOWER = 1
NOT_ENOUGH_REPLICAS = 2
NOT_ENOUGH_REPLICAS_AFTER_APPEND = 3
REQUEST_TIMED_OUT = 4
NETWORK_EXCEPTION = 5
OUT_OF_ORDER_SEQUENCE_NUMBER = 6
DUPLICATE_SEQUENCE_NUMBER = 7
FENCED_LEADER_EPOCH = 8
OFFSET_OUT_OF_RANGE = 9

ERROR_NAMES = {
    NONE: "NONE",
    NOT_LEADER_OR_FOLLOWER: "NOT_LEADER_OR_FOLLOWER",
    NOT_ENOUGH_REPLICAS: "NOT_ENOUGH_REPLICAS",
    NOT_ENOUGH_REPLICAS_AFTER_APPEND: "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    REQUEST_TIMED_OUT: "REQUEST_TIMED_OUT",
    NETWORK_EXCEPTION: "NETWORK_EXCEPTION",
    OUT_OF_ORDER_SEQUENCE_NUMBER: "OUT_OF_ORDER_SEQUENCE_NUMBER",
    DUPLICATE_SEQUENCE_NUMBER: "DUPLICATE_SEQUENCE_NUMBER",
    FENCED_LEADER_EPOCH: "FENCED_LEADER_EPOCH",
    OFFSET_OUT_OF_RANGE: "OFFSET_OUT_OF_RANGE",
}
# Errors after which the producer asks for fresh metadata before retrying.
METADATA_ERRORS = frozenset(
    {NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, NETWORK_EXCEPTION, REQUEST_TIMED_OUT}
)
# Errors that leave it open whether the batch was written: a failure is then "indeterminate".
UNKNOWN_OUTCOME = frozenset(
    {REQUEST_TIMED_OUT, NETWORK_EXCEPTION, NOT_ENOUGH_REPLICAS_AFTER_APPEND}
)

REQUEST_HEADER_BYTES = 100  # request/response headers, topic and partition fields


class ProducerBatch:
    """A batch of one producer for one partition (ProducerBatch in the Java client)."""

    __slots__ = (
        "attempts",
        "base_seq",
        "count",
        "created_ms",
        "done",
        "ids",
        "last_error",
        "max_ts",
        "maybe_written",
        "nbytes",
        "partition",
        "producer_id",
        "ready_ms",
        "sent_once",
    )

    def __init__(
        self,
        partition: int,
        ids: np.ndarray,
        nbytes: int,
        created_ms: float,
        max_ts: float,
        producer_id: int,
        base_seq: int,
    ):
        self.partition = partition
        self.ids = ids
        self.count = int(ids.shape[0])
        self.nbytes = nbytes
        self.created_ms = created_ms  # for delivery.timeout.ms
        self.max_ts = max_ts  # record CreateTime (the intended send time of the newest record)
        self.producer_id = producer_id  # -1 without idempotence
        self.base_seq = base_seq
        self.attempts = 0
        self.ready_ms = created_ms  # retry backoff
        self.sent_once = False
        self.done = False
        self.last_error = NONE
        self.maybe_written = False  # an attempt ended without knowing (timeout, reset)


class ProduceRequest:
    """One ProduceRequest: the batches of one producer for the partitions one broker leads."""

    __slots__ = (
        "acks",
        "batches",
        "broker",
        "completed_ms",
        "deadline_ms",
        "nbytes",
        "producer",
        "sent_ms",
    )

    def __init__(
        self,
        producer: Any,
        broker: int,
        batches: list[ProducerBatch],
        acks: str,
        sent_ms: float,
        timeout_ms: float,
    ):
        self.producer = producer
        self.broker = broker
        self.batches = batches
        self.acks = acks
        self.sent_ms = sent_ms
        self.deadline_ms = sent_ms + timeout_ms
        self.nbytes = REQUEST_HEADER_BYTES + sum(b.nbytes for b in batches)
        self.completed_ms: float | None = None  # when the answer reaches the producer


class DelayedProduce:
    """An acks=all request waiting in the leader's purgatory for the HW to pass its batches."""

    __slots__ = ("errors", "offsets", "remaining", "request", "respond_at")

    def __init__(self, request: ProduceRequest):
        self.request = request
        self.errors = [NONE] * len(request.batches)
        self.offsets = [-1] * len(request.batches)
        self.remaining = 0
        self.respond_at = 0.0


class FollowerFetch:
    """A follower's FetchRequest to one leader: (partition, fetch offset, last fetched epoch)."""

    __slots__ = (
        "deadline_ms",
        "fetcher",
        "follower",
        "generation",
        "parked_at",
        "partitions",
        "pset",
    )

    def __init__(
        self,
        fetcher: Any,
        follower: int,
        generation: int,
        partitions: list[tuple[int, int, int, int]],
        pset: frozenset[int] | None = None,
    ):
        self.fetcher = fetcher
        self.follower = follower
        self.generation = generation
        # (partition, fetch offset, last fetched epoch, current leader epoch)
        self.partitions = partitions
        # the partitions as a set (the fetcher passes the one it keeps)
        self.pset = pset if pset is not None else frozenset(p for p, _, _, _ in partitions)
        self.parked_at = 0.0
        self.deadline_ms = 0.0


class FetchedPartition:
    """One partition of a follower fetch response."""

    __slots__ = (
        "diverging",
        "error",
        "high_watermark",
        "log_start",
        "nbytes",
        "partition",
        "pieces",
        "state",
    )

    def __init__(
        self,
        partition: int,
        error: int = NONE,
        pieces: list[Piece] | None = None,
        nbytes: float = 0.0,
        high_watermark: int = 0,
        log_start: int = 0,
        state: Any = None,
    ):
        self.partition = partition
        self.error = error
        self.pieces: list[Piece] = [] if pieces is None else pieces
        self.nbytes = nbytes
        self.high_watermark = high_watermark
        self.log_start = log_start
        self.diverging: tuple[int, int] | None = None  # (epoch, end offset) to truncate to
        self.state = state  # the leader's FollowerState (to note the HW it sent)


class PartitionState:
    """The controller's record of a partition (KRaft PartitionRecord / PartitionChangeRecord)."""

    __slots__ = (
        "elr",
        "isr",
        "leader",
        "leader_epoch",
        "partition",
        "partition_epoch",
        "recovering",
        "replicas",
    )

    def __init__(self, partition: int, replicas: list[int]):
        self.partition = partition
        self.replicas = replicas
        self.leader = replicas[0]
        self.leader_epoch = 0
        self.partition_epoch = 0
        self.isr = list(replicas)
        self.elr: list[int] = []
        self.recovering = False  # KIP-704 LeaderRecoveryState: elected uncleanly

    def copy(self) -> PartitionState:
        other = PartitionState(self.partition, self.replicas)
        other.leader = self.leader
        other.leader_epoch = self.leader_epoch
        other.partition_epoch = self.partition_epoch
        other.isr = list(self.isr)
        other.elr = list(self.elr)
        other.recovering = self.recovering
        return other
