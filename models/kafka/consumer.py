"""Consumers: members of the group (group.py), fetching their partitions from the leaders.

The group assigns partitions (`take`) and takes them back (`revoke`); the position of a
partition advances as records are processed, and what a commit would store follows the commit
mode: the end of the last fully processed poll (auto-commit, manual commit after processing) or
the end of the poll being processed (commit before processing). A crash loses the positions:
the next owner resumes at the committed offset.

A fetch goes to the partition's leader, which answers when records below the high watermark are
available (`fetch.min.bytes` = 1) or after `fetch.max.wait.ms`; the consumer processes the
records (`processing_ms` each, times the node's slowdown; `max.poll.records` per poll) and sends
the next fetch as soon as the last poll of the answer starts (KafkaConsumer pipelines fetches).
The consumer validates its position against the leader's epochs (KIP-320) and goes back to
where the log diverged after an unclean election.

Why lazy: a caught-up consumer gets one answer per HW advance, far more often than anything
else happens. So a fetch does not travel as events: it is *parked* at the leader with its
arrival time, and answered when the leader settles it (when its HW moves, or when the model
settles everything before a fault, a gauge sample or the drain check). Each answer's arrival,
the processing times and the next fetch follow arithmetically from the network delays. Facts
dated after "now" stay pending and are withdrawn if a fault reaches the consumer first.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.node import PAUSED, UP, Node

if TYPE_CHECKING:
    from models.kafka.broker import Broker
    from models.kafka.cluster import KafkaModel
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
        "last_epoch",
        "leader",
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
        # fetched records not yet processed by `now`: (first time, last time, ids, times,
        # first offset, epoch of the last record, first offset of the answer = poll boundary)
        self.pending: deque[tuple[float, float, np.ndarray, Any, int, int, int]] = deque()


class Consumer(Node):
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

    def commit_offset(self, cursor: Cursor) -> tuple[int, int]:
        """What a commit stores now (offset, leader epoch): the end of the last processed poll,
        or (commit before processing) the end of the poll being processed."""
        position = cursor.position
        if not cursor.pending:
            return position, cursor.position_epoch
        first, _, ids, _, offset, epoch, base = cursor.pending[0]
        polls = self.cfg.max_poll_records
        before = not self.cfg.enable_auto_commit and self.cfg.manual_commit == "before_processing"
        if before:
            started = first - self.processing_ms * self.slowdown <= self.env.now
            if not started:
                return position, cursor.position_epoch
            end = offset + ids.shape[0]
            return min(end, base + ((position - base) // polls + 1) * polls), epoch
        floor = base + ((position - base) // polls) * polls
        return floor, (epoch if floor > offset else cursor.position_epoch)

    def commit_all(self) -> None:
        group = self.model.group
        for p, cursor in self.cursors.items():
            group.commit(self, p, *self.commit_offset(cursor))

    def revoke(self, p: int, commit: bool) -> None:
        """Give partition `p` back (the group settled everything up to now)."""
        cursor = self.cursors.get(p)
        if cursor is None:
            return
        self.flush(self.env.now)
        if commit and (
            self.cfg.enable_auto_commit or self.cfg.manual_commit != "before_processing"
        ):
            # onPartitionsRevoked: auto-commit (and a careful application) commits the position
            self.model.group.commit(self, p, cursor.position, cursor.position_epoch)
        self._withdraw_cursor(cursor)
        del self.cursors[p]

    def revoke_all(self, commit: bool) -> None:
        for p in list(self.cursors):
            self.revoke(p, commit)

    # --- fetching ---------------------------------------------------------------------------------
    def fetch(self, cursor: Cursor, send_ms: float) -> None:
        """Send a fetch for `cursor` at `send_ms` (now, or a lazily computed time)."""
        cursor.gen += 1
        cursor.parked_on = None
        cursor.arrival = INF
        cursor.state = IDLE
        if self.state != UP:
            return
        model = self.model
        if cursor.leader < 0:
            self.refresh_metadata(cursor)
            return
        broker = model.brokers[cursor.leader]
        net = model.net
        cursor.sent_ms = send_ms
        if not net.reachable(self.name, broker.name):
            # a cut: TCP holds the request until the heal (or the request times out)
            gen = cursor.gen
            cursor.state = NETWORK
            net.send(
                self.name,
                broker.name,
                FETCH_BYTES,
                lambda: self._arrive(cursor, broker, self.env.now, gen),
                timeout_ms=self.cfg.request_timeout_ms,
                on_reset=lambda: self._failed(cursor, gen),
            )
            return
        arrival = send_ms + net.delay(self.name, broker.name, FETCH_BYTES)
        self._arrive(cursor, broker, arrival, cursor.gen)

    def _arrive(self, cursor: Cursor, broker: Broker, arrival: float, gen: int) -> None:
        """The fetch reaches `broker` at `arrival`: park it on the leader replica."""
        if gen != cursor.gen or self.state != UP:
            return
        net = self.model.net
        if broker.state != UP and broker.state != PAUSED:
            if broker.host_down:  # nobody answers: the request times out
                self._error_at(cursor.sent_ms + self.cfg.request_timeout_ms, cursor)
            else:  # connection refused by the dead process's kernel
                self._error_at(arrival + net.delay(broker.name, self.name, 60), cursor)
            return
        rep = broker.replicas.get(cursor.partition)
        if rep is None or not rep.is_leader:
            self._error_at(arrival + net.delay(broker.name, self.name, 60), cursor)
            return
        cursor.state = PARKED
        cursor.parked_on = rep
        cursor.arrival = arrival
        rep.consumer_waiters.append(cursor)

    def _error_at(self, t: float, cursor: Cursor) -> None:
        """An error answer (NOT_LEADER, reset) or a timeout reaches us at `t`."""
        cursor.state = WAITING
        cursor.parked_on = None
        gen = cursor.gen
        self.env.timeout(max(0.0, t - self.env.now)).callbacks.append(
            lambda _e: self._failed(cursor, gen)
        )

    def _failed(self, cursor: Cursor, gen: int) -> None:
        if gen != cursor.gen or self.state != UP:
            return
        self.refresh_metadata(cursor)

    def refresh_metadata(self, cursor: Cursor) -> None:
        """After retry.backoff.ms, ask a broker who leads the partition now."""
        cursor.gen += 1
        cursor.state = METADATA
        cursor.parked_on = None
        gen = cursor.gen
        model = self.model

        def ask(_e: Any) -> None:
            if gen != cursor.gen or self.state != UP:
                return
            brokers = model.brokers
            broker = brokers[(cursor.partition + int(self.env.now)) % len(brokers)]
            model.net.send(
                self.name,
                broker.name,
                FETCH_BYTES,
                lambda: broker.answer_metadata(self, cursor),
                timeout_ms=self.cfg.request_timeout_ms,
                on_reset=lambda: self.on_metadata({}, False, cursor),
            )
            # a broker that lost power never answers: ask another one after request.timeout.ms
            self.env.timeout(self.cfg.request_timeout_ms).callbacks.append(unanswered)

        def unanswered(_e: Any) -> None:
            if gen == cursor.gen and cursor.state == METADATA and self.state == UP:
                self.refresh_metadata(cursor)

        self.env.timeout(self.cfg.retry_backoff_ms).callbacks.append(ask)

    def on_metadata(
        self, leaders: dict[int, int], complete: bool, cursor: Cursor | None = None
    ) -> None:
        """A metadata answer (or its loss) for the partition of `cursor`."""
        if cursor is None or self.state != UP or cursor.state != METADATA:
            return
        leader = leaders.get(cursor.partition, -1)
        cursor.leader = leader
        if leader < 0:
            self.refresh_metadata(cursor)
        else:
            self.fetch(cursor, self.env.now)

    # --- answers (computed by settle) -------------------------------------------------------------
    def answered(self, cursor: Cursor, rep: PartitionReplica, t: float, hw: int) -> None:
        """The leader answers the parked fetch at `t` with what lies below `hw`."""
        log = rep.log
        offset = cursor.fetch_offset
        broker = rep.broker
        model = self.model
        if cursor.last_epoch >= 0:
            found, end = log.end_offset_for_epoch(cursor.last_epoch)
            if found != cursor.last_epoch or end < offset:
                model.ctx.event(
                    "consumer_truncation_detected",
                    self.name,
                    partition=cursor.partition,
                    offset=end,
                )
                self._reposition(cursor, end, t)
                return
        if offset < log.log_start or offset > log.leo:
            self._out_of_range(cursor, rep, t)
            return
        nbytes = 0.0
        pieces: list[Any] = []
        if offset < hw:
            pieces, nbytes = log.read(offset, hw, self.cfg.max_partition_fetch_bytes)
            # data older than what the page cache holds comes from the disk
            if model.page_cache_miss(broker, log, offset):
                t += broker.disk.read_time_ms(nbytes)
        t = broker.capacity.send(t, nbytes + FETCH_BYTES)
        net = model.net
        if not net.reachable(broker.name, self.name):
            # the answer meets a cut: TCP holds it until the heal
            cursor.state = NETWORK
            gen = cursor.gen
            net.send(
                broker.name,
                self.name,
                nbytes + FETCH_BYTES,
                lambda: self._answer_event(cursor, pieces, log, gen),
            )
            return
        arrival = t + net.delay(broker.name, self.name, nbytes + FETCH_BYTES)
        last = self.channel_last.get(broker.name, -INF)
        if arrival < last:
            arrival = last
        self.channel_last[broker.name] = arrival
        self._process(cursor, pieces, log, arrival)

    def _answer_event(self, cursor: Cursor, pieces: list[Any], log: Any, gen: int) -> None:
        if gen == cursor.gen and self.state == UP:
            self._process(cursor, pieces, log, self.env.now)

    def _process(self, cursor: Cursor, pieces: list[Any], log: Any, arrival: float) -> None:
        """Records reach the consumer at `arrival`: process them, fetch again."""
        n = sum(c for _, _, c, _ in pieces)
        if n == 0:
            self.fetch(cursor, arrival)
            return
        ids = log.ids(pieces)
        proc = self.processing_ms * self.slowdown
        start = arrival if arrival > self.busy_until else self.busy_until
        if proc <= 0.0:
            times: Any = start
            first = last = next_send = start
        else:
            polls = self.cfg.max_poll_records
            times = start + proc * np.arange(1, n + 1, dtype=np.float64)
            first, last = float(times[0]), float(times[-1])
            last_poll = n % polls or polls
            next_send = start + proc * (n - last_poll)
        self.busy_until = last
        epoch = pieces[-1][3]
        offset = cursor.fetch_offset
        cursor.pending.append((first, last, ids, times, offset, epoch, offset))
        cursor.fetch_offset += n
        cursor.last_epoch = epoch
        self.fetch(cursor, next_send if next_send > arrival else arrival)

    def _out_of_range(self, cursor: Cursor, rep: PartitionReplica, t: float) -> None:
        """OFFSET_OUT_OF_RANGE: auto.offset.reset decides where to go."""
        log = rep.log
        target = log.log_start if self.cfg.auto_offset_reset == "earliest" else log.leo
        skipped_from = max(cursor.fetch_offset, log.log_start)
        if target > skipped_from:
            ids = log.ids(log.pieces(skipped_from, target))
            self.model.ctx.history.skip(ids.astype(np.int64), "offset_reset_latest", t)
        self.model.ctx.event("offset_reset", self.name, partition=cursor.partition, offset=target)
        self._reposition(cursor, target, t)

    def _reposition(self, cursor: Cursor, offset: int, t: float) -> None:
        cursor.fetch_offset = offset
        cursor.last_epoch = -1
        if cursor.pending:
            cursor.reset_to = offset
        else:
            cursor.position = offset
        self.fetch(cursor, t)

    # --- facts ------------------------------------------------------------------------------------
    def flush(self, now: float) -> None:
        """Deliveries done by `now` go to the history; the position advances with them."""
        group = self.model.group
        manual = not self.cfg.enable_auto_commit
        exactly_once = self.cfg.exactly_once
        polls = self.cfg.max_poll_records
        for p, cursor in self.cursors.items():
            pending = cursor.pending
            moved = False
            while pending:
                first, last, ids, times, offset, epoch, base = pending[0]
                if last <= now:
                    self._deliver(cursor, ids, times, offset, base)
                    cursor.position = offset + ids.shape[0]
                    cursor.position_epoch = epoch
                    pending.popleft()
                    moved = True
                    continue
                if first <= now:
                    k = int(np.searchsorted(times, now, side="right"))
                    if exactly_once:
                        # only whole polls: each is a transaction, committed when it ends
                        k = base + ((offset + k - base) // polls) * polls - offset
                        if k <= 0:
                            break
                    self._deliver(cursor, ids[:k], times[:k], offset, base)
                    rest = (float(times[k]), last, ids[k:], times[k:], offset + k, epoch, base)
                    pending[0] = rest
                    cursor.position = offset + k
                    moved = True
                break
            if not pending and cursor.reset_to is not None:
                cursor.position = cursor.reset_to
                cursor.reset_to = None
            if moved:
                group.note_processed(p, cursor.position)
            if manual and self.state == UP:
                group.commit(self, p, *self.commit_offset(cursor))

    def _deliver(self, cursor: Cursor, ids: np.ndarray, times: Any, offset: int, base: int) -> None:
        """Processed: records an earlier owner had processed too are redeliveries."""
        facts = self.model.facts
        if self.cfg.exactly_once:
            times = self._visible_times(times, offset, base)
        k = min(ids.shape[0], cursor.redeliver_until - offset)
        if k > 0:
            head = times[:k] if np.ndim(times) else times
            facts.deliver(ids[:k], head, cursor.redeliver_cause)
            ids = ids[k:]
            times = times[k:] if np.ndim(times) else times
        if ids.shape[0]:
            facts.deliver(ids, times)

    def _visible_times(self, times: Any, offset: int, base: int) -> Any:
        """exactly_once: a record becomes visible (read_committed) when its poll's transaction
        commits, i.e. when the last record of the poll is processed."""
        if not np.ndim(times):
            return times
        polls = self.cfg.max_poll_records
        n = times.shape[0]
        rel = np.arange(offset - base, offset - base + n)
        last_of_poll = np.minimum((rel // polls + 1) * polls, rel[-1] + 1) - 1 - (offset - base)
        return times[last_of_poll]

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

    def resume_fetching(self) -> None:
        """Fetch again from the positions (after a fault reached this consumer)."""
        if self.state != UP:
            return
        for cursor in self.cursors.values():
            if cursor.state == IDLE:
                self.fetch(cursor, self.env.now)

    # --- node hooks -------------------------------------------------------------------------------
    def on_crash(self) -> None:
        # the process's memory is gone: positions and fetched records; the group notices later
        self.withdraw()
        self.cursors = {}
        self.model.group.member_down(self, crashed=True)

    def on_stop(self) -> None:
        self.model.settle_all()
        self.model.group.member_leaving(self)

    def on_pause(self) -> None:
        self.withdraw()
        self.model.group.member_down(self, crashed=False)

    def on_resume(self) -> None:
        self.model.group.member_resumed(self)
        self.resume_fetching()

    def on_restart(self) -> None:
        self.model.group.member_restarted(self)

    def caught_up(self, hw_of: Any) -> bool:
        return all(not c.pending and c.position >= hw_of(p) for p, c in self.cursors.items())


def settle(rep: PartitionReplica, now: float) -> None:
    """Answer the consumer fetches parked on leader replica `rep` that are due by `now`."""
    waiters = rep.consumer_waiters
    broker = rep.broker
    if not waiters or broker.state != UP:
        return
    cfg = broker.model.config.consumer
    max_wait = cfg.fetch_max_wait_ms
    min_bytes = cfg.fetch_min_bytes
    floor = broker.serving_since
    progressed = True
    while progressed and waiters:
        progressed = False
        hw = rep.log.hw
        since = rep.hw_since
        for cursor in list(waiters):
            arrival = cursor.arrival
            if arrival > now:
                continue
            offset = cursor.fetch_offset
            if (
                offset < hw and (min_bytes <= 1 or rep.log.bytes_between(offset, hw) >= min_bytes)
            ) or not (rep.log.log_start <= offset <= rep.log.leo):
                t = arrival if arrival > since else since  # fetch.min.bytes available
            elif arrival + max_wait <= now:
                t = arrival + max_wait  # fetch.max.wait.ms passed: an empty answer
            else:
                continue
            if t < floor:
                t = floor
            waiters.remove(cursor)
            cursor.parked_on = None
            cursor.state = IDLE
            cursor.consumer.answered(cursor, rep, t, hw)
            progressed = True


def abandon(rep: PartitionReplica, now: float, reset: bool) -> None:
    """The leader replica stops serving: parked fetches get an error (reset) or time out."""
    waiters = rep.consumer_waiters
    rep.consumer_waiters = []
    for cursor in waiters:
        consumer = cursor.consumer
        if reset:
            when = max(now, cursor.arrival) + consumer.model.net.delay(
                rep.broker.name, consumer.name, 60
            )
        else:
            when = cursor.sent_ms + consumer.cfg.request_timeout_ms
        consumer._error_at(when, cursor)
