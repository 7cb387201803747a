"""Consumer commits: what a commit stores for a partition, and giving partitions back.

The position of a partition advances as records are processed; what a commit stores follows the
commit mode: the end of the last fully processed poll (auto-commit, manual commit after
processing) or the end of the poll being processed (commit before processing). With
`exactly_once` nothing is committed here: each poll's transaction carries its offsets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models.kafka.consumer_cursor import Cursor
from models.kafka.consumer_part import ConsumerPart
from simulator.node import UP

if TYPE_CHECKING:
    pass


class Committing(ConsumerPart):
    """The committing part of a consumer (mixed into `Consumer`)."""

    def commit_offset(self, cursor: Cursor) -> tuple[int, int]:
        """What a commit stores now (offset, leader epoch): the end of the last processed poll,
        or (commit before processing) the end of the poll being processed."""
        position = cursor.position
        if not cursor.pending:
            return position, cursor.position_epoch
        first, _, ids, _, offset, epoch, base = cursor.pending[0]
        polls = self.cfg.max_poll_records
        if self._commits_before_processing():
            started = first - self.processing_ms * self.slowdown <= self.env.now
            if not started:
                return position, cursor.position_epoch
            end = offset + ids.shape[0]
            return min(end, base + ((position - base) // polls + 1) * polls), epoch
        floor = base + ((position - base) // polls) * polls
        # the epoch of the record before `floor`: inside this answer (its epoch) once past its
        # first offset, even when part of it was already processed (`offset` moved on)
        return floor, (epoch if floor > base else cursor.position_epoch)

    def _commits_before_processing(self) -> bool:
        cfg = self.cfg
        manual_before = not cfg.enable_auto_commit and cfg.manual_commit == "before_processing"
        return manual_before and not cfg.exactly_once

    def commit_all(self) -> None:
        if self.cfg.exactly_once:
            return  # offsets are committed by the poll's transaction (transactions.py)
        group = self.model.group
        for p, cursor in self.cursors.items():
            group.commit(self.consumer, p, *self.commit_offset(cursor))

    def revoke(self, p: int, commit: bool) -> None:
        """Give partition `p` back (the group settled everything up to now)."""
        cursor = self.cursors.get(p)
        if cursor is None:
            return
        self.flush(self.env.now)
        if self._commits_before_processing() and self.state == UP:
            # A live member processes every record poll() returned before its next poll() runs
            # the revocation. The model revokes at a time that can fall inside a poll it has
            # committed (before processing) but not finished: the next owner starts at what was
            # processed and delivers the rest once, as the member would have.
            self.model.group.commit(self.consumer, p, cursor.position, cursor.position_epoch)
        if (
            commit
            and not self.cfg.exactly_once  # the poll's transaction commits its offsets
            and (self.cfg.enable_auto_commit or self.cfg.manual_commit != "before_processing")
        ):
            # onPartitionsRevoked: auto-commit (and a careful application) commits the position
            self.model.group.commit(self.consumer, p, cursor.position, cursor.position_epoch)
        txns = self.model.transactions
        if commit and txns is not None and txns.open_for(p, self.name):
            # onPartitionsRevoked of a transactional loop: commit the transaction in progress
            # with the position reached (the new owner waits for it, see Group._hand_over)
            txns.commit(self.consumer, p, cursor.position, cursor.position_epoch, self.env.now)
        elif not commit and txns is not None:
            txns.abandon(p, self.consumer)  # onPartitionsLost: abort what is in progress
        self._withdraw_cursor(cursor)
        del self.cursors[p]
        # its fetched records will not be processed here: the time planned for them is free
        # (what the member still has to process for its other partitions stays planned)
        planned = max((entry[1] for c in self.cursors.values() for entry in c.pending), default=0.0)
        self.busy_until = min(self.busy_until, max(planned, self.env.now))

    def revoke_all(self, commit: bool) -> None:
        for p in list(self.cursors):
            self.revoke(p, commit)
