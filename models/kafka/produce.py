"""The leader's produce path: appending producer batches, answering, acks=all purgatory.

A mixin of `Broker` (broker.py). A ProduceRequest goes through the broker's threads
(capacity.py); each batch is checked (leadership, `min.insync.replicas` for acks=all: a
NotEnoughReplicas error before anything is appended, idempotence sequence numbers) and
appended; acks=1 is answered at once, acks=all waits in the purgatory until the HW passes its
batches (DelayedProduce), acks=0 is never answered (a rejected acks=0 batch is silently lost:
the broker only closes the connection). With `log.flush.interval.messages` the handler thread
fsyncs before answering (Log.maybeFlush).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from models.kafka import protocol as pr
from models.kafka.facts import DROPPED, NEVER_ARRIVED
from models.kafka.replication import complete_parked
from simulator.node import PAUSED, UP

if TYPE_CHECKING:
    from models.kafka.broker import Broker
    from models.kafka.capacity import Capacity
    from models.kafka.partition import PartitionReplica

# What reached a paused process, handled on resume: (handler, its arguments, what a reset of
# the connection tells the sender; None for the broker's own timers)
BacklogEntry = tuple[Callable[..., None], tuple[Any, ...], Callable[[], None] | None]

# A request that waited this long for a thread is applied when its thread gets to it (an extra
# event); below, it is applied on arrival and only its answer waits (no event needed).
DEFER_MS = 0.1


class LeaderProduce:
    """Produce requests on a broker (mixed into `Broker`)."""

    # attributes provided by Broker
    env: Any
    ctx: Any
    model: Any
    state: str
    incarnation: int
    capacity: Capacity
    replicas: dict[int, PartitionReplica]
    parked: list[pr.FollowerFetch]
    backlog: list[BacklogEntry]
    min_isr: int
    flush_every: int | None
    serving: Callable[..., bool]

    # --- produce ----------------------------------------------------------------------------------
    def receive_produce(self, request: pr.ProduceRequest) -> None:
        if self.state != UP and not self.serving(
            self.receive_produce, (request,), lambda: request.producer.refused(request, self)
        ):
            if request.acks == "0" and self.state != PAUSED:
                self._lost_on_arrival(request, NEVER_ARRIVED)
            return
        now = self.env.now
        cap = self.capacity
        cap.bytes_in += request.nbytes
        cap.produce_requests += 1
        done, waited = cap.handle(now, request.nbytes)
        if waited > DEFER_MS:
            incarnation = self.incarnation
            self.env.timeout(done - now).callbacks.append(
                lambda _e: self._produce_later(request, incarnation)
            )
            return
        self._produce(request, done)

    def _produce_later(self, request: pr.ProduceRequest, incarnation: int) -> None:
        """A request read earlier, waiting for a request handler thread: handled now, on resume
        (a pause freezes the queue), or never (the process that read it is gone: a producer
        expecting an answer heard of it with the broker's in-flight requests, acks=0 records
        in it never reach a log)."""
        if self.incarnation != incarnation:
            if request.acks == "0":
                self._lost_on_arrival(request, NEVER_ARRIVED)
            return
        if self.state == PAUSED:
            self.backlog.append((self._produce_later, (request, incarnation), None))
            return
        self._produce(request, self.env.now)

    def _produce(self, request: pr.ProduceRequest, respond_at: float) -> None:
        now = self.env.now
        all_acks = request.acks == "all"
        batches = request.batches
        delayed = pr.DelayedProduce(request)
        errors, offsets = delayed.errors, delayed.offsets
        appended: list[PartitionReplica] = []
        flushed: Any = None
        replicas = self.replicas
        for i, batch in enumerate(batches):
            rep = replicas.get(batch.partition)
            if rep is None or not rep.is_leader:
                errors[i] = pr.NOT_LEADER_OR_FOLLOWER
                continue
            if all_acks and len(rep.isr) < self.min_isr:
                errors[i] = pr.NOT_ENOUGH_REPLICAS  # checked before appending: nothing written
                continue
            error, base, end = rep.append_from_producer(batch, now)
            if error == pr.OUT_OF_ORDER_SEQUENCE_NUMBER:
                errors[i] = error
                continue
            offsets[i] = base
            if error == pr.NONE:
                appended.append(rep)
                if self.flush_every is not None and rep.log.unflushed >= self.flush_every:
                    # Log.maybeFlush runs in the request handler thread: the answer waits
                    flushed = rep.log.flush()
            if all_acks and rep.log.hw < end:
                delayed.remaining += 1
                rep.ack_waiters.append((end, delayed, i))
        if appended and self.parked:
            complete_parked(cast("Broker", self), appended, now)
        if request.acks == "0":
            # nobody hears about a rejected acks=0 batch (the broker only closes the connection)
            rejected = [
                b
                for b, e in zip(batches, errors, strict=True)
                if e != pr.NONE and e != pr.DUPLICATE_SEQUENCE_NUMBER
            ]
            if rejected:
                self._lost_on_arrival(request, DROPPED, rejected)
                request.producer.connection_closed(self)
            return
        if flushed is not None and not flushed.triggered:
            incarnation = self.incarnation

            def after_flush(_e: Any) -> None:
                if self.incarnation == incarnation:
                    self._answer_or_wait(delayed, max(self.env.now, respond_at))

            flushed.callbacks.append(after_flush)
            return
        self._answer_or_wait(delayed, respond_at)

    def _answer_or_wait(self, delayed: pr.DelayedProduce, respond_at: float) -> None:
        if delayed.remaining == 0:
            self.answer_produce(delayed.request, delayed.errors, delayed.offsets, respond_at)
        else:
            delayed.respond_at = respond_at

    def _lost_on_arrival(
        self, request: pr.ProduceRequest, cause: str, batches: list[pr.ProducerBatch] | None = None
    ) -> None:
        """An acks=0 batch that never made it into the log (its producer counts it as sent)."""
        for batch in batches if batches is not None else request.batches:
            self.model.facts.dropped(batch.ids, cause, self.env.now)

    def answer_produce(
        self, request: pr.ProduceRequest, errors: list[int], offsets: list[int], t: float
    ) -> None:
        request.producer.receive_answer(request, errors, t, self)

    def on_hw_advanced(self, rep: PartitionReplica, now: float) -> None:
        """The leader's HW moved: acknowledge acks=all batches, serve waiting consumers."""
        if rep.ack_waiters:
            for delayed, index, error in rep.complete_acks(self.min_isr):
                delayed.errors[index] = error
                delayed.remaining -= 1
                if delayed.remaining == 0:
                    t = max(now, delayed.respond_at)
                    self.answer_produce(delayed.request, delayed.errors, delayed.offsets, t)
        if rep.consumer_waiters:
            self.model.settle_consumers(rep, now)
