"""Consumer fetching: requests to partition leaders, parked fetches answered lazily, metadata
refreshes, epoch validation (KIP-320) and `auto.offset.reset` when out of range.

A fetch goes to the partition's leader, which answers when records below the high watermark are
available (`fetch.min.bytes` = 1) or after `fetch.max.wait.ms`. Why lazy: a caught-up consumer
gets one answer per HW advance, far more often than anything else happens. So a fetch does not
travel as events: it is *parked* at the leader with its arrival time, and answered (`settle`)
when the leader's HW moves, or when the model settles everything before a fault, a gauge sample
or the drain check. The answer's records go to processing (consumer_process.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.kafka.consumer_cursor import (
    FETCH_BYTES,
    IDLE,
    INF,
    METADATA,
    NETWORK,
    PARKED,
    WAITING,
    Cursor,
)
from models.kafka.consumer_part import ConsumerPart
from models.kafka.facts import OFFSET_RESET_LATEST, undelivered
from simulator.node import PAUSED, UP

if TYPE_CHECKING:
    from models.kafka.broker import Broker
    from models.kafka.partition import PartitionReplica


class Fetching(ConsumerPart):
    """The fetching half of a consumer (mixed into `Consumer`)."""

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
        link = net.link(self.name, broker.name)
        if link.cut_count:
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
        arrival = send_ms + link.sample(FETCH_BYTES)
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
        link = net.link(broker.name, self.name)
        if link.cut_count:
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
        arrival = t + link.sample(nbytes + FETCH_BYTES)
        last = self.channel_last.get(broker.name, -INF)
        if arrival < last:
            arrival = last
        self.channel_last[broker.name] = arrival
        self._process(cursor, pieces, log, arrival)

    def _answer_event(self, cursor: Cursor, pieces: list[Any], log: Any, gen: int) -> None:
        if gen == cursor.gen and self.state == UP:
            self._process(cursor, pieces, log, self.env.now)

    def _out_of_range(self, cursor: Cursor, rep: PartitionReplica, t: float) -> None:
        """OFFSET_OUT_OF_RANGE: auto.offset.reset decides where to go (`latest`: the high
        watermark, what ListOffsets answers a consumer; not the log end)."""
        log = rep.log
        target = log.log_start if self.cfg.auto_offset_reset == "earliest" else log.hw
        # above the log end (the log lost records the consumer had read, and may have been
        # written again since): it goes back to the HW, and never reads what now lies below it
        beyond = cursor.fetch_offset > log.leo
        skipped_from = log.log_start if beyond else max(cursor.fetch_offset, log.log_start)
        if target > skipped_from:
            history = self.model.ctx.history
            history.skip(undelivered(history, log, skipped_from, target), OFFSET_RESET_LATEST, t)
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
