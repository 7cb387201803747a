"""Consumers: members of the group (group.py), fetching their partitions from the leaders.

The group assigns partitions (`take`) and takes them back (`revoke`); a crash loses the
positions: the next owner resumes at the committed offset. The consumer is split by concern:
`consumer_cursor.py` (per-partition state), `consumer_fetch.py` (fetches, leaders, epochs,
offset resets), `consumer_process.py` (processing and deliveries), `consumer_commit.py` (what a
commit stores, revocation). This module keeps membership and the node hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.kafka.consumer_commit import Committing
from models.kafka.consumer_cursor import INF, Cursor
from models.kafka.consumer_fetch import Fetching, abandon, settle
from models.kafka.consumer_process import Processing
from simulator.node import UP, Node

if TYPE_CHECKING:
    from models.kafka.cluster import KafkaModel

__all__ = ["Consumer", "Cursor", "abandon", "settle"]


class Consumer(Fetching, Processing, Committing, Node):
    """One consuming client, a member of the group, with the partitions assigned to it."""

    def __init__(self, model: KafkaModel, index: int):
        super().__init__(model.ctx, f"consumer{index}", role="consumer")
        self.model = model
        self.cfg = model.config.consumer
        self.processing_ms = model.spec.workload.processing_ms
        self.cursors: dict[int, Cursor] = {}
        self.busy_until = -INF
        self.channel_last: dict[str, float] = {}
        self.member_generation = 0
        self.session_pending = False
        self.expired = False

    # --- group membership -------------------------------------------------------------------------
    @property
    def joinable(self) -> bool:
        return self.state == UP

    def poll_ms(self) -> float:
        """Time to process one full poll (max.poll.records), with the current slowdown."""
        return self.cfg.max_poll_records * self.processing_ms * self.slowdown

    def longest_poll_ms(self) -> float:
        """Time to process the longest poll among the records fetched (the poll in progress
        included): poll() returns at most max.poll.records, fewer when fewer were fetched, so a
        member that keeps up calls poll() again after a few records."""
        polls = self.cfg.max_poll_records
        longest = 0
        for cursor in self.cursors.values():
            for _, _, ids, _, offset, _, base in cursor.pending:
                start = base + (offset - base) // polls * polls  # the poll holding `offset`
                longest = max(longest, min(polls, offset + ids.shape[0] - start))
        return longest * self.processing_ms * self.slowdown

    def current_poll_left_ms(self) -> float:
        """Time until this member calls poll() again (the poll it processes is done)."""
        return min(max(0.0, self.busy_until - self.env.now), self.poll_ms())

    def take(self, p: int, start: int, epoch: int, processed: int, redeliver_cause: str) -> None:
        """The group assigned partition `p`: consume from `start` (validated with `epoch`)."""
        cursor = Cursor(self, p)
        cursor.position = cursor.fetch_offset = start
        cursor.position_epoch = cursor.last_epoch = epoch
        if processed > start:
            cursor.redeliver_until = processed
            cursor.redeliver_cause = redeliver_cause
        self.cursors[p] = cursor
        if self.state == UP:
            cursor.leader = self.model.controller.leader_of(p)
            self.fetch(cursor, self.env.now)

    # --- node hooks -------------------------------------------------------------------------------
    def on_crash(self) -> None:
        # the process's memory is gone: positions and fetched records; the group notices later
        self.withdraw()
        self.cursors = {}
        if self.model.transactions is not None:
            self.model.transactions.forget(self)  # its transactional producer died with it
        self.model.group.member_down(self, crashed=True)

    def on_stop(self) -> None:
        self.model.settle_all()
        self.model.group.member_leaving(self)

    def on_pause(self) -> None:
        self.flush(self.env.now)
        self.hold_poll()  # the frozen process keeps the records poll() returned
        self.withdraw()
        self.model.group.member_down(self, crashed=False)

    def on_resume(self) -> None:
        self.model.group.member_resumed(self)
        self.resume_fetching()

    def on_restart(self) -> None:
        self.model.group.member_restarted(self)

    def caught_up(self, hw_of: Any) -> bool:
        """Nothing left to read, once every leader's HW is its log end (`drained`): a position
        beyond it (a log that lost records this consumer had read) is no end, its next fetch is
        out of range and resets."""
        return all(not c.pending and c.position == hw_of(p) for p, c in self.cursors.items())
