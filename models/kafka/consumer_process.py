"""Consumer processing: fetched records are processed (`processing_ms` each, times the node's
slowdown, `max.poll.records` per poll) and become deliveries once their time has passed.

The records of an answer are processed back to back after whatever the consumer is busy with,
and the next fetch is sent as soon as the last poll of the answer starts (KafkaConsumer
pipelines fetches). Facts dated after "now" stay pending in the cursor and are withdrawn if a
fault reaches the consumer first; `flush(now)` hands what is done to the history and advances
the positions a commit would store.

A compacted log's answer lacks the records the cleaner removed (id -1 here: they take no
processing time and are never delivered). With `exactly_once` a processed record is not a
delivery: its output goes into the poll's transaction, and the downstream reader decides when it
is seen (transactions.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from models.kafka.consumer_cursor import IDLE, INF, WAITING, Cursor
from models.kafka.consumer_part import ConsumerPart
from models.kafka.facts import DUP_PRODUCER_RETRY, DUP_REBALANCE
from simulator.node import UP

if TYPE_CHECKING:
    pass


class Processing(ConsumerPart):
    """The processing half of a consumer (mixed into `Consumer`)."""

    def _process(self, cursor: Cursor, pieces: list[Any], log: Any, arrival: float) -> None:
        """Records reach the consumer at `arrival`: process them, fetch again."""
        n = sum(c for _, _, c, _ in pieces)
        if n == 0:
            self.fetch(cursor, arrival)
            return
        ids = log.ids(pieces)
        cleaner = self.model.cleaner
        if cleaner is not None:
            # a compacted log: records the cleaner removed are not in the answer (id -1)
            ids = cleaner.visible(cursor.partition, pieces, ids)
        proc = self.processing_ms * self.slowdown
        if proc <= 0.0:
            # nothing to wait for: the poll returns the records when they arrive (answers of
            # several partitions are settled in no particular order, so none waits for another)
            times: Any = arrival
            first = last = next_send = arrival
            if arrival > self.busy_until:
                self.busy_until = arrival
        else:
            start = arrival if arrival > self.busy_until else self.busy_until
            polls = self.cfg.max_poll_records
            last_poll = n % polls or polls
            if cleaner is None or ids[ids < 0].shape[0] == 0:
                times = start + proc * np.arange(1, n + 1, dtype=np.float64)
                next_send = start + proc * (n - last_poll)
            else:  # removed records take no processing time
                done = np.cumsum(ids >= 0)
                times = start + proc * done.astype(np.float64)
                next_send = (
                    start + proc * float(done[n - last_poll - 1]) if n > last_poll else start
                )
            first, last = float(times[0]), float(times[-1])
            self.busy_until = last
        epoch = pieces[-1][3]
        offset = cursor.fetch_offset
        cursor.pending.append((first, last, ids, times, offset, epoch, offset))
        cursor.fetch_offset += n
        cursor.last_epoch = epoch
        self.fetch(cursor, next_send if next_send > arrival else arrival)

    # --- facts ------------------------------------------------------------------------------------
    def flush(self, now: float) -> None:
        """Deliveries done by `now` go to the history; the position advances with them."""
        group = self.model.group
        manual = not self.cfg.enable_auto_commit
        transactional = self.cfg.exactly_once
        for p, cursor in self.cursors.items():
            pending = cursor.pending
            moved = False
            while pending:
                first, last, ids, times, offset, epoch, base = pending[0]
                if first > now:
                    break
                k = ids.shape[0]
                if last > now:
                    k = int(times.searchsorted(now, "right"))  # last > now: one time per record
                head = times[:k] if isinstance(times, np.ndarray) else times
                if transactional:
                    stops = (base, offset + ids.shape[0])
                    self._transform(cursor, ids[:k], head, offset, epoch, stops)
                else:
                    self._deliver(cursor, ids[:k], head, offset)
                moved = True
                if k == ids.shape[0]:
                    cursor.position = offset + k
                    cursor.position_epoch = epoch
                    pending.popleft()
                    continue
                pending[0] = (float(times[k]), last, ids[k:], times[k:], offset + k, epoch, base)
                cursor.position = offset + k
                # the record before the position is in this answer: its epoch (what a commit on
                # revocation stores, validated by the next owner as in KIP-320)
                cursor.position_epoch = epoch
                break
            if not pending and cursor.reset_to is not None:
                cursor.position = cursor.reset_to
                cursor.reset_to = None
            if moved:
                group.note_processed(p, cursor.position)
            if manual and not transactional and self.state == UP:
                group.commit(self.consumer, p, *self.commit_offset(cursor))

    def _transform(
        self, cursor: Cursor, ids: np.ndarray, times: Any, offset: int, epoch: int, stops: tuple
    ) -> None:
        """exactly_once: processed records are sent to the output inside the poll's transaction;
        a poll that ends commits its transaction with its end offset (transactions.py)."""
        txns = self.model.transactions
        assert txns is not None  # exactly_once runs have the coordinator
        polls = self.cfg.max_poll_records
        base, entry_end = stops
        rel = offset - base  # records of this answer before `ids`
        done, k = 0, ids.shape[0]
        while done < k:
            # the poll holding record `done` ends at the next multiple of max.poll.records from
            # the answer's first offset, or at the answer's end
            poll_end = min(((rel + done) // polls + 1) * polls - rel, entry_end - offset)
            stop = min(poll_end, k)
            part = times[done:stop] if isinstance(times, np.ndarray) else times
            cause = (
                cursor.redeliver_cause
                if offset + done < cursor.redeliver_until
                else DUP_PRODUCER_RETRY
            )
            txns.send(self.consumer, cursor.partition, ids[done:stop], part, cause)
            if stop == poll_end:
                end_ms = float(part[-1]) if isinstance(part, np.ndarray) else float(part)
                txns.commit(self.consumer, cursor.partition, offset + stop, epoch, end_ms)
            done = stop

    def _deliver(self, cursor: Cursor, ids: np.ndarray, times: Any, offset: int) -> None:
        """Processed: records an earlier owner had processed too are redeliveries."""
        k = min(ids.shape[0], cursor.redeliver_until - offset)
        if k > 0:
            head = times[:k] if isinstance(times, np.ndarray) else times
            self._record(ids[:k], head, cursor.redeliver_cause)
            ids = ids[k:]
            times = times[k:] if isinstance(times, np.ndarray) else times
        if ids.shape[0]:
            self._record(ids, times, None)

    def _record(self, ids: np.ndarray, times: Any, dup_cause: str | None) -> None:
        """Hand deliveries to the facts (records a cleaner removed before the fetch are not)."""
        if self.model.cleaner is not None and ids.min() < 0:
            keep = ids >= 0
            ids = ids[keep]
            times = times[keep] if isinstance(times, np.ndarray) else times
            if not ids.shape[0]:
                return
        if dup_cause is None:
            self.model.facts.deliver(ids, times)
        else:
            self.model.facts.deliver(ids, times, dup_cause)

    def withdraw(self) -> None:
        """Forget what was planned after now (fetches on their way, later processing)."""
        now = self.env.now
        self.flush(now)
        for cursor in self.cursors.values():
            self._withdraw_cursor(cursor)
        self.busy_until = now
        self.channel_last = {}

    def _withdraw_cursor(self, cursor: Cursor) -> None:
        cursor.pending.clear()
        if cursor.reset_to is not None:
            cursor.position = cursor.reset_to
            cursor.reset_to = None
        cursor.fetch_offset = cursor.position
        cursor.last_epoch = cursor.position_epoch
        rep = cursor.parked_on
        if rep is not None and cursor in rep.consumer_waiters:
            rep.consumer_waiters.remove(cursor)
        cursor.parked_on = None
        cursor.arrival = INF
        cursor.state = IDLE
        cursor.gen += 1

    def hold_poll(self) -> None:
        """A frozen process keeps in memory what poll() returned and it has not processed yet:
        per partition, the rest of the poll in progress (called at a pause, after a flush)."""
        now = self.env.now
        proc = self.processing_ms * self.slowdown
        polls = self.cfg.max_poll_records
        for cursor in self.cursors.values():
            cursor.in_hand = None
            if not cursor.pending or self.cfg.exactly_once:
                continue  # a transactional zombie is fenced: what it would write is aborted
            first, _, ids, _, offset, epoch, base = cursor.pending[0]
            if (offset - base) % polls == 0 and first - proc > now:
                continue  # the next poll has not started: nothing returned to the application
            end = min(offset + ids.shape[0], base + ((offset - base) // polls + 1) * polls)
            cursor.in_hand = (ids[: end - offset].copy(), offset, epoch, base)

    def finish_lost_poll(self, p: int) -> None:
        """Back from a freeze, the member processes the rest of the poll it held for partition
        `p`, taken from it meanwhile; its next poll() learns that and drops `p` (no commit: it
        would fail). What it processes the new owner may process too (duplicates)."""
        cursor = self.cursors[p]
        held, cursor.in_hand = cursor.in_hand, None
        if held is None or self.state != UP:
            self.consumer.revoke(p, commit=False)
            return
        ids, offset, epoch, base = held
        now = self.env.now
        proc = self.processing_ms * self.slowdown
        start = now if now > self.busy_until else self.busy_until
        done = np.cumsum(ids >= 0).astype(np.float64)  # records a cleaner removed take no time
        times = start + proc * done
        first, last = float(times[0]), float(times[-1])
        cursor.pending.append((first, last, ids, times, offset, epoch, base))
        cursor.state = WAITING  # no fetching: the partition is no longer ours
        cursor.lost += 1
        token = cursor.lost
        self.busy_until = last
        group = self.model.group
        end = offset + ids.shape[0]
        group.note_processed(p, end)
        # whichever of the two processes a record second redelivers it after the rebalance
        if cursor.redeliver_until < end:
            cursor.redeliver_until, cursor.redeliver_cause = end, DUP_REBALANCE
        owner = group.owner.get(p)
        theirs = group.consumers()[owner].cursors.get(p) if owner is not None else None
        if theirs is not None and theirs.redeliver_until < end:
            # the new owner, reaching these records, processes them again
            theirs.redeliver_until = end
            theirs.redeliver_cause = theirs.redeliver_cause or DUP_REBALANCE

        def drop(_e: Any) -> None:
            if self.cursors.get(p) is not cursor or cursor.lost != token:
                return  # crashed (its memory is gone), given p again, or frozen again
            if self.state == UP and group.owner.get(p) != self.name:
                self.model.settle_all()
                self.consumer.revoke(p, commit=False)

        self.env.timeout(max(0.0, last - now)).callbacks.append(drop)

    def resume_fetching(self) -> None:
        """Fetch again from the positions (after a fault reached this consumer)."""
        if self.state != UP:
            return
        for cursor in self.cursors.values():
            if cursor.state == IDLE and not cursor.lost:
                self.fetch(cursor, self.env.now)
