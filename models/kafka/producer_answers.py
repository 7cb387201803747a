"""The producer's side of answers: acknowledgements, errors, retries, expiry, epochs.

A mixin of `Producer` (producer.py), split off to keep one concept per module: what happens to
a batch once it was sent. Successful answers are settled lazily (the broker computes when the
answer arrives; the producer processes it once its clock passes that time); errors are events
at their arrival time. Retriable errors requeue the batch at the head of its partition
(RecordAccumulator.reenqueue) after `retry.backoff.ms` doubling to `retry.backoff.max.ms`
(KIP-580, with jitter); `request.timeout.ms` closes the connection and fails every unanswered
request on it; `delivery.timeout.ms` after send() a record fails (indeterminate if some attempt
may have been written). With idempotence a real gap in the sequence bumps the producer epoch
(KIP-360).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

from models.kafka import protocol as pr
from models.kafka.accumulator import INF
from models.kafka.store import BATCH_OVERHEAD_BYTES
from simulator.node import UP

if TYPE_CHECKING:
    from collections import deque

    import numpy as np

    from models.kafka.accumulator import PartitionQueue
    from models.kafka.broker import Broker
    from models.kafka.config import ProducerConfig

EXPIRY_SCAN_MS = 10.0  # batches past delivery.timeout.ms are found within 10 ms


class ProducerAnswers:
    """Answers, retries and expiry of a producer's batches (mixed into `Producer`)."""

    # attributes provided by Producer
    cfg: ProducerConfig
    env: Any
    model: Any
    name: str
    state: str
    index: int
    idempotent: bool
    producer_id: int
    epoch: int
    next_seq: list[int]
    last_acked_seq: list[int]
    inflight: dict[int, list[pr.ProduceRequest]]
    unsettled: list[tuple[float, int, pr.ProduceRequest]]
    retries: list[deque[pr.ProducerBatch]]
    queues: list[PartitionQueue]
    blocked: deque[list[np.ndarray]]
    buffer_used: float
    channel_last: dict[str, float]
    wake_at: float
    metadata_pending: bool
    metadata_deadline: float
    _seq: int
    _next_expiry_scan: float
    rng: Any

    if TYPE_CHECKING:  # provided by Producer

        def _waits_for_answers(self, broker: int | None) -> bool: ...
        def _arm(self, t: float) -> None: ...
        def _admit(self) -> None: ...
        def _dirty(self, p: int) -> None: ...
        def _dirty_all(self) -> None: ...
        def refresh_metadata(self) -> None: ...
        def step(self) -> None: ...

    # --- answers ----------------------------------------------------------------------------------
    def receive_answer(
        self, request: pr.ProduceRequest, errors: list[int], sent_ms: float, broker: Broker
    ) -> None:
        """The leader answers at `sent_ms` (called by the broker when it decides the answer)."""
        if request.completed_ms is not None:
            return
        net = self.model.net
        ok = all(e == pr.NONE or e == pr.DUPLICATE_SEQUENCE_NUMBER for e in errors)
        link = net.link(broker.name, self.name)
        if link.cut_count:
            # TCP keeps the answer until the cut heals (or the request times out first)
            net.send(broker.name, self.name, 100, lambda: self._answer_now(request, errors))
            return
        arrival = sent_ms + link.sample(100)
        last = self.channel_last.get(broker.name, -INF)
        if arrival < last:
            arrival = last
        self.channel_last[broker.name] = arrival
        if ok:
            request.completed_ms = arrival
            self._seq += 1
            heapq.heappush(self.unsettled, (arrival, self._seq, request))
            if arrival < self.wake_at and self._waits_for_answers(request.broker):
                self._arm(arrival)
        else:
            self.env.timeout(max(0.0, arrival - self.env.now)).callbacks.append(
                lambda _e: self._answer_now(request, errors)
            )

    def settle(self, now: float) -> None:
        """Process the successful answers that have arrived by `now`."""
        heap = self.unsettled
        facts = self.model.facts
        while heap and heap[0][0] <= now:
            arrival, _, request = heapq.heappop(heap)
            if request.completed_ms != arrival:
                continue  # abandoned (timed out) before the answer came
            flying = self.inflight.get(request.broker)
            if flying is not None and request in flying:
                flying.remove(request)
            for batch in request.batches:
                if not batch.done:
                    facts.ack(batch.ids, arrival)
                    self._finish(batch)
                    self._acked(batch)
        if self.blocked and self.state == UP:
            self._admit()

    def _answer_now(self, request: pr.ProduceRequest, errors: list[int]) -> None:
        """An answer with errors (or any answer after a cut) reaches the producer now."""
        if request.completed_ms is not None and request.completed_ms <= self.env.now:
            return
        now = self.env.now
        request.completed_ms = now
        flying = self.inflight.get(request.broker)
        if flying is not None and request in flying:
            flying.remove(request)
        refresh = any(error in pr.METADATA_ERRORS for error in errors)
        facts = self.model.facts
        for batch, error in zip(request.batches, errors, strict=True):
            if batch.done:
                continue
            if error == pr.OUT_OF_ORDER_SEQUENCE_NUMBER and self._behind_acked(batch):
                # a later batch of this epoch was acknowledged, and a leader accepts sequences
                # only in order: this one is in the log, older than the leader's 5-batch cache
                error = pr.DUPLICATE_SEQUENCE_NUMBER
            if error == pr.NONE or error == pr.DUPLICATE_SEQUENCE_NUMBER:
                facts.ack(batch.ids, now)
                self._finish(batch)
                self._acked(batch)
                continue
            if (
                error == pr.OUT_OF_ORDER_SEQUENCE_NUMBER
                and batch.producer_id == self.producer_id
                and batch.base_seq == self.last_acked_seq[batch.partition] + 1
            ):
                # the leader misses sequences we saw acknowledged (a truncated log): a real
                # gap, so bump the epoch and start the sequences over (KIP-360)
                self._bump_epoch()
            self._retry_or_fail(batch, error, now)
        if refresh:
            self.refresh_metadata()
        self.step()

    def refused(self, request: pr.ProduceRequest, broker: Broker) -> None:
        """The broker's process is dead: its kernel resets the connection."""
        delay = self.model.net.delay(broker.name, self.name, 60)
        errors = [pr.NETWORK_EXCEPTION] * len(request.batches)
        self.env.timeout(delay).callbacks.append(lambda _e: self._answer_now(request, errors))

    def connection_closed(self, broker: Broker) -> None:
        """The broker closed our connection (how it signals an error to acks=0 producers)."""
        delay = self.model.net.delay(broker.name, self.name, 60)
        self.env.timeout(delay).callbacks.append(lambda _e: self.refresh_metadata())

    def broker_lost(self, broker: Broker, reset: bool) -> None:
        """The broker died with our requests unanswered: a reset tells us now, else we wait."""
        if not reset:
            return
        flying = [r for r in self.inflight.get(broker.id, []) if r.completed_ms is None]
        for request in flying:
            self.refused(request, broker)

    # --- retries, expiry --------------------------------------------------------------------------
    def _retry_or_fail(self, batch: pr.ProducerBatch, error: int, now: float) -> None:
        cfg = self.cfg
        if error in pr.UNKNOWN_OUTCOME:
            batch.maybe_written = True
        expired = now >= batch.created_ms + cfg.delivery_timeout_ms
        if expired or batch.attempts > cfg.retries:
            self._give_up(batch, error, now)
            return
        # the exponent is capped: with retries = MAX_INT and a zero backoff the attempts grow
        # without bound, and 2**attempts would overflow a float long after the cap is reached
        backoff = min(
            cfg.retry_backoff_ms * 2.0 ** min(batch.attempts - 1, 64),
            max(cfg.retry_backoff_max_ms, cfg.retry_backoff_ms),
        )
        backoff *= 0.8 + 0.4 * float(self.rng.random())  # KIP-580 jitter
        batch.ready_ms = now + backoff
        batch.last_error = error
        retry = self.retries[batch.partition]
        if self.idempotent:
            # keep sequence order: the broker accepts sequence numbers only in order
            items = list(retry)
            items.append(batch)
            items.sort(key=lambda b: (b.producer_id != self.producer_id, b.base_seq))
            retry.clear()
            retry.extend(items)
        else:
            retry.appendleft(batch)  # addFirst: several retries can come back reversed
        self._dirty(batch.partition)

    def _give_up(self, batch: pr.ProducerBatch, error: int, now: float) -> None:
        facts = self.model.facts
        if batch.sent_once and (
            batch.maybe_written or error in pr.UNKNOWN_OUTCOME or error == pr.NONE
        ):
            # some attempt may have been written: the client cannot know
            facts.indeterminate(batch.ids, now)
        else:
            facts.fail(batch.ids, now)
        self._finish(batch)
        if self.idempotent:
            self._bump_epoch()  # KIP-360: the failed batch leaves a gap in the sequence

    def _bump_epoch(self) -> None:
        """A new producer epoch (modelled as a new producer id): sequences start at 0 again
        and queued batches are renumbered when they are sent."""
        self.epoch += 1
        if self.idempotent:
            self.producer_id = (self.index << 16) + self.epoch
        self.next_seq = [0] * len(self.next_seq)
        self.last_acked_seq = [-1] * len(self.last_acked_seq)
        self._dirty_all()

    def _behind_acked(self, batch: pr.ProducerBatch) -> bool:
        return (
            batch.producer_id == self.producer_id
            and batch.base_seq + batch.count - 1 <= self.last_acked_seq[batch.partition]
        )

    def _acked(self, batch: pr.ProducerBatch) -> None:
        if batch.producer_id == self.producer_id:
            last = batch.base_seq + batch.count - 1
            if last > self.last_acked_seq[batch.partition]:
                self.last_acked_seq[batch.partition] = last

    def _finish(self, batch: pr.ProducerBatch) -> None:
        batch.done = True
        self.buffer_used -= batch.nbytes - BATCH_OVERHEAD_BYTES

    def _expire(self, now: float) -> None:
        cfg = self.cfg
        timed_out: set[int] = set()
        for leader, flying in self.inflight.items():
            for request in flying:  # sent in order: the first unanswered one expires first
                if request.completed_ms is None:
                    if request.deadline_ms <= now:
                        timed_out.add(leader)
                    break
        for leader in sorted(timed_out):
            # NetworkClient closes the connection: every unanswered request on it fails
            flying = self.inflight[leader]
            self.inflight[leader] = [r for r in flying if r.completed_ms is not None]
            for request in flying:
                if request.completed_ms is None:
                    request.completed_ms = now
                    for batch in request.batches:
                        if not batch.done:
                            self._retry_or_fail(batch, pr.REQUEST_TIMED_OUT, now)
        if timed_out:
            self.refresh_metadata()
        if self.metadata_pending and now >= self.metadata_deadline:
            self.metadata_pending = False
            self.metadata_deadline = INF
            self.refresh_metadata()
        if now < self._next_expiry_scan:
            return
        self._next_expiry_scan = now + EXPIRY_SCAN_MS
        horizon = now - cfg.delivery_timeout_ms
        for p, queue in enumerate(self.queues):
            if queue and queue.first_time() < horizon:
                expired, nbytes = queue.expire(horizon)
                if expired.shape[0]:
                    self.model.facts.fail(expired, now)
                    self.buffer_used -= nbytes
                    self._dirty(p)
            retry = self.retries[p]
            while retry and retry[0].created_ms < horizon:
                batch = retry.popleft()
                self._give_up(batch, batch.last_error, now)
                self._dirty(p)
