"""A consumer's per-partition state (`Cursor`) and the constants the consumer modules share."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from models.kafka.consumer import Consumer
    from models.kafka.partition import PartitionReplica


FETCH_BYTES = 120
INF = float("inf")
# cursor states
IDLE, PARKED, NETWORK, WAITING, METADATA = range(5)


class Cursor:
    """A consumer's state for one assigned partition."""

    __slots__ = (
        "arrival",
        "consumer",
        "fetch_offset",
        "gen",
        "in_hand",
        "last_epoch",
        "leader",
        "lost",
        "parked_on",
        "partition",
        "pending",
        "position",
        "position_epoch",
        "redeliver_cause",
        "redeliver_until",
        "reset_to",
        "sent_ms",
        "state",
    )

    def __init__(self, consumer: Consumer, partition: int):
        self.consumer = consumer
        self.partition = partition
        self.position = 0  # next offset to process (what a commit would store)
        self.position_epoch = -1
        self.reset_to: int | None = None
        self.redeliver_until = 0  # records below were processed by an earlier owner
        self.redeliver_cause = ""
        self.fetch_offset = 0  # next offset to fetch
        self.last_epoch = -1  # epoch of the last fetched record (KIP-320)
        self.leader = -1
        self.state = IDLE
        self.gen = 0  # bumped whenever a fetch is abandoned: late events of it are ignored
        self.parked_on: PartitionReplica | None = None
        self.arrival = INF  # when the parked fetch reaches the leader
        self.sent_ms = INF
        # records a frozen process held in memory: the rest of the poll in progress (ids, first
        # offset, epoch, poll boundary), processed when it resumes even if the partition is gone
        self.in_hand: tuple[np.ndarray, int, int, int] | None = None
        self.lost = 0  # > 0: taken from us while frozen, finishing that poll (its number)
        # fetched records not yet processed by `now`: (first time, last time, ids, times,
        # first offset, epoch of the last record, first offset of the answer = poll boundary)
        self.pending: deque[tuple[float, float, np.ndarray, Any, int, int, int]] = deque()
