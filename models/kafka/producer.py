"""A KafkaProducer: buffer, batching, the sender, retries, idempotence, metadata.

What is modelled (Kafka 4.0 ProducerConfig semantics):
- send() accepts a record into `buffer.memory` (blocking up to `max.block.ms` when full); the
  acknowledgement of `acks=0` is this moment (the record is then sent and forgotten);
- the sender wakes when some broker has a sendable batch (full or `linger.ms` old, or a retry
  whose backoff ended) and sends that broker one ProduceRequest with one batch per partition it
  leads, at most `max.in.flight.requests.per.connection` unanswered requests per broker;
- answers: success acknowledges (acks=1|all); retriable errors requeue the batch after
  `retry.backoff.ms` (doubling to `retry.backoff.max.ms`, KIP-580) and refresh metadata after a
  leadership error; a request without answer for `request.timeout.ms` is retried; a record
  still unacknowledged `delivery.timeout.ms` after send() fails (indeterminate if it was sent);
- idempotence: producer id + per-partition sequence numbers; the leader drops a retried batch it
  already has and rejects a gap, so retries are resent in order; without idempotence a retry can
  write a batch twice (duplicates) and, with several requests in flight, out of order.

Successful answers are "settled" lazily: the broker computes when the answer reaches the
producer, and the producer processes it when its own clock passes that time (no event per
answer). Errors are events at their arrival time.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from models.kafka import protocol as pr
from models.kafka.accumulator import INF, PartitionQueue
from models.kafka.facts import NEVER_ARRIVED
from models.kafka.producer_answers import ProducerAnswers
from models.kafka.store import BATCH_OVERHEAD_BYTES
from simulator.node import PAUSED, UP, Node

if TYPE_CHECKING:
    from models.kafka.broker import Broker
    from models.kafka.cluster import KafkaModel

METADATA_BYTES = 200


class Producer(ProducerAnswers, Node):
    """One producing client."""

    def __init__(self, model: KafkaModel, index: int):
        super().__init__(model.ctx, f"producer{index}", role="client")
        self.model = model
        self.index = index
        cfg = model.config.producer
        self.cfg = cfg
        self.acks = cfg.acks
        self.idempotent = cfg.idempotent
        self.epoch = 0
        self.producer_id = (index << 16) if self.idempotent else -1
        n = model.config.topic.partitions
        self.queues = [PartitionQueue() for _ in range(n)]
        self.retries: list[deque[pr.ProducerBatch]] = [deque() for _ in range(n)]
        self.next_seq = [0] * n
        self.last_acked_seq = [-1] * n
        self.leader_of = [-1] * n
        self.partitions_of: dict[int, list[int]] = {}
        self.inflight: dict[int, list[pr.ProduceRequest]] = {}
        self.unarrived = 0  # acks=0 requests still on their way to a broker
        self.unsettled: list[tuple[float, int, pr.ProduceRequest]] = []  # heap of lazy answers
        self._seq = 0
        self.blocked: deque[list[Any]] = deque()  # [ids, times, partitions, sizes] not yet accepted
        self.buffer_used = 0.0
        self.batch_limit = cfg.batch_size - BATCH_OVERHEAD_BYTES
        self.wake_at = INF
        self._token = 0
        self.metadata_pending = False
        self.metadata_deadline = INF
        self._metadata_due = INF  # when to ask again (a leader unknown, a broker refused)
        self._metadata_rr = index
        self.channel_last: dict[str, float] = {}
        self._drain_start = 0
        self.rng = model.ctx.rng(f"kafka.{self.name}.backoff")
        self._ready_cache: list[float | None] = [None] * n
        self._leader_ready: dict[int, float | None] = {}
        self.flushing = False  # close()/flush(): every batch is sendable at once
        self._next_expiry_scan = 0.0

    # --- metadata ---------------------------------------------------------------------------------
    def set_leaders(self, leaders: dict[int, int]) -> None:
        for p, leader in leaders.items():
            self.leader_of[p] = leader
        self.partitions_of = {}
        for p, leader in enumerate(self.leader_of):
            if leader >= 0:
                self.partitions_of.setdefault(leader, []).append(p)
        for leader in self.partitions_of:
            self.inflight.setdefault(leader, [])
        self._leader_ready = {}

    def refresh_metadata(self) -> None:
        """Ask a broker for the partition leaders (it answers from its own metadata view)."""
        if self.metadata_pending:
            return
        self.metadata_pending = True
        now = self.env.now
        self.metadata_deadline = now + self.cfg.request_timeout_ms
        brokers = self.model.brokers
        self._metadata_rr += 1
        broker = brokers[self._metadata_rr % len(brokers)]
        self.model.net.send(
            self.name,
            broker.name,
            METADATA_BYTES,
            lambda: broker.answer_metadata(self),
            timeout_ms=self.cfg.request_timeout_ms,
        )
        self._arm(self.metadata_deadline)

    def on_metadata(self, leaders: dict[int, int], complete: bool, _cursor: Any = None) -> None:
        self.metadata_pending = False
        self.metadata_deadline = INF
        if leaders:
            self.set_leaders(leaders)
        if not complete or any(leader < 0 for leader in self.leader_of):
            self._metadata_due = self.env.now + self.cfg.retry_backoff_ms
        self.step()

    # --- records in -------------------------------------------------------------------------------
    def accept(
        self, ids: np.ndarray, times: np.ndarray, partitions: np.ndarray, sizes: np.ndarray
    ) -> None:
        """New records from the application (send() calls at their intended times)."""
        if self.state == PAUSED:
            # a frozen application calls send() when it runs again: the records wait for it
            self.blocked.append([ids, times, partitions, sizes])
            return
        if self.state != UP:
            self.model.facts.fail(ids, self.env.now)  # the producing application is down
            return
        self.blocked.append([ids, times, partitions, sizes])
        self._admit()
        self._arm(self._next_wake())

    def _admit(self) -> None:
        """Move records from send() into the accumulator while buffer.memory has room."""
        now = self.env.now
        cfg = self.cfg
        n_parts = len(self.queues)
        while self.blocked:
            ids, times, partitions, sizes = self.blocked[0]
            room = cfg.buffer_memory - self.buffer_used
            cum = np.cumsum(sizes)
            k = int(np.searchsorted(cum, room, side="right"))
            if k == 0:
                # send() blocks; past max.block.ms it throws (the record was never sent)
                late = int(np.searchsorted(times, now - cfg.max_block_ms, side="left"))
                if late:
                    self.model.facts.fail(ids[:late], now)
                    self.blocked[0] = [ids[late:], times[late:], partitions[late:], sizes[late:]]
                    if late == ids.shape[0]:
                        self.blocked.popleft()
                    continue
                return
            floor = now if float(times[0]) < now else -INF
            take_ids, take_t, take_p, take_s = ids[:k], times[:k], partitions[:k], sizes[:k]
            self.buffer_used += float(cum[k - 1])
            if k < ids.shape[0]:
                self.blocked[0] = [ids[k:], times[k:], partitions[k:], sizes[k:]]
            else:
                self.blocked.popleft()
            if n_parts == 1:
                self.queues[0].add(take_ids, take_t, take_s, floor)
                self._dirty(0)
                continue
            order = np.argsort(take_p.astype(np.int16), kind="stable")  # radix sort
            counts = np.bincount(take_p, minlength=n_parts)
            bounds = np.concatenate(([0], np.cumsum(counts)))
            s_ids, s_t, s_s = take_ids[order], take_t[order], take_s[order]
            for p in np.flatnonzero(counts).tolist():
                a, b = bounds[p], bounds[p + 1]
                self.queues[p].add(s_ids[a:b], s_t[a:b], s_s[a:b], floor)
                self._dirty(p)

    # --- the sender -------------------------------------------------------------------------------
    def _dirty(self, p: int) -> None:
        """Partition p's queues changed: its ready time (and its leader's) must be recomputed."""
        self._ready_cache[p] = None
        self._leader_ready[self.leader_of[p]] = None

    def _dirty_all(self) -> None:
        self._ready_cache = [None] * len(self._ready_cache)
        self._leader_ready = {}

    def _leader_ready_at(self, leader: int, parts: list[int]) -> float:
        """When some partition led by `leader` has a sendable batch (cached)."""
        cached = self._leader_ready.get(leader)
        if cached is None:
            cache = self._ready_cache
            cached = INF
            for p in parts:
                t = cache[p]
                if t is None:
                    t = cache[p] = self._compute_ready(p)
                if t < cached:
                    cached = t
            self._leader_ready[leader] = cached
        return cached

    def _ready(self, p: int) -> float:
        """When partition `p` has a sendable batch (cached until its queues change)."""
        cached = self._ready_cache[p]
        if cached is not None:
            return cached
        value = self._ready_cache[p] = self._compute_ready(p)
        return value

    def _compute_ready(self, p: int) -> float:
        retry = self.retries[p]
        if retry:
            # a batch back from a failed attempt sits at the head of the partition's queue:
            # nothing behind it is drained before it goes (RecordAccumulator.reenqueue)
            return retry[0].ready_ms
        first = INF
        queue = self.queues[p]
        if queue:
            accepted = queue.first_time()
            if self.flushing:
                t = accepted
            else:
                t = accepted + self.cfg.linger_ms
                full = queue.full_time(self.batch_limit)
                if full < t:
                    t = full
            if t < first:
                first = t
        return first

    def _next_wake(self) -> float:
        limit = self.cfg.max_in_flight_requests_per_connection
        wake = min(self.metadata_deadline, self._metadata_due)
        for leader, parts in self.partitions_of.items():
            if len(self.inflight[leader]) >= limit:
                continue
            t = self._leader_ready_at(leader, parts)
            if t < wake:
                wake = t
        for flying in self.inflight.values():
            for req in flying:
                if req.completed_ms is None and req.deadline_ms < wake:
                    wake = req.deadline_ms
        if self.unsettled and self.unsettled[0][0] < wake and self._waits_for_answers(None):
            wake = self.unsettled[0][0]
        return wake

    def _waits_for_answers(self, broker: int | None) -> bool:
        """Whether an answer would unblock something (a full connection, a full buffer)."""
        if self.blocked:
            return True
        limit = self.cfg.max_in_flight_requests_per_connection
        if broker is not None:
            return len(self.inflight.get(broker, ())) >= limit
        return any(len(f) >= limit for f in self.inflight.values())

    def _arm(self, t: float) -> None:
        if t >= self.wake_at or t == INF:
            return
        self.wake_at = t
        self._token += 1
        token = self._token
        delay = max(0.0, t - self.env.now)
        self.env.timeout(delay).callbacks.append(lambda _e: self._woken(token))

    def _woken(self, token: int) -> None:
        if token != self._token:
            return
        self.wake_at = INF
        self.step()

    def step(self) -> None:
        """One pass of the sender loop (Sender.runOnce)."""
        if self.state != UP:
            return
        now = self.env.now
        if self.unsettled:
            self.settle(now)
        if now >= self._metadata_due:
            self._metadata_due = INF
            self.refresh_metadata()
        self._expire(now)
        limit = self.cfg.max_in_flight_requests_per_connection
        for leader, parts in self.partitions_of.items():
            flying = self.inflight[leader]
            while len(flying) < limit:
                if self._leader_ready_at(leader, parts) > now:
                    break
                if not self._send(leader, parts, now):
                    break
        self.wake_at = INF
        self._token += 1
        self._arm(self._next_wake())

    def _send(self, leader: int, parts: list[int], now: float) -> bool:
        cfg = self.cfg
        batches: list[pr.ProducerBatch] = []
        size = pr.REQUEST_HEADER_BYTES
        k = len(parts)
        start = self._drain_start % k
        self._drain_start += 1
        cache = self._ready_cache
        self._leader_ready[leader] = None
        for j in range(k):
            p = parts[(start + j) % k]
            if cache[p] == INF:
                continue  # known empty (no retry, no record): nothing to drain
            retry = self.retries[p]
            batch = None
            if retry:
                if retry[0].ready_ms > now:
                    continue  # backing off: the partition waits
                batch = retry[0]
                if batch.producer_id != self.producer_id and self.idempotent:
                    self._resequence(batch)
                if size + batch.nbytes > cfg.max_request_size and batches:
                    break
                retry.popleft()
            else:
                cut = self.queues[p].take(now, self.batch_limit)
                if cut is not None:
                    ids, nbytes, first, newest = cut
                    seq = self.next_seq[p]
                    self.next_seq[p] = seq + ids.shape[0]
                    batch = pr.ProducerBatch(
                        p,
                        ids,
                        int(nbytes) + BATCH_OVERHEAD_BYTES,
                        first,
                        newest,
                        self.producer_id,
                        seq,
                    )
            if batch is None:
                continue  # the partition's queues did not change: its ready time holds
            cache[p] = None
            batches.append(batch)
            size += batch.nbytes
            if size >= cfg.max_request_size:
                break
        if not batches:
            return False
        request = pr.ProduceRequest(self, leader, batches, self.acks, now, cfg.request_timeout_ms)
        for batch in batches:
            batch.attempts += 1
            batch.sent_once = True
        broker = self.model.brokers[leader]
        if self.acks == "0":
            # acks=0: acknowledged once handed to the network, never answered, never retried
            facts = self.model.facts
            for batch in batches:
                facts.ack(batch.ids, now)
                self._finish(batch)
            self.unarrived += 1  # (the drain waits for it: its fate is decided where it lands)
            self.model.net.send(
                self.name,
                broker.name,
                request.nbytes,
                lambda: self._arrived(broker, request),
                timeout_ms=cfg.request_timeout_ms,
                on_reset=lambda: self._never_arrived(request),
            )
            return True
        self.inflight[leader].append(request)
        self.model.net.send(
            self.name,
            broker.name,
            request.nbytes,
            lambda: broker.receive_produce(request),
            timeout_ms=cfg.request_timeout_ms,
        )
        return True

    def _arrived(self, broker: Broker, request: pr.ProduceRequest) -> None:
        self.unarrived -= 1
        broker.receive_produce(request)

    def _never_arrived(self, request: pr.ProduceRequest) -> None:
        """An acks=0 request held by a cut longer than request.timeout.ms: the connection is
        reset, and nobody tells anyone its records never reached a broker."""
        self.unarrived -= 1
        now = self.env.now
        for batch in request.batches:
            self.model.facts.dropped(batch.ids, NEVER_ARRIVED, now)

    def _resequence(self, batch: pr.ProducerBatch) -> None:
        """After an epoch bump (KIP-360) queued retries get fresh sequence numbers."""
        p = batch.partition
        batch.producer_id = self.producer_id
        batch.base_seq = self.next_seq[p]
        self.next_seq[p] += batch.count

    # --- state ------------------------------------------------------------------------------------
    def on_crash(self) -> None:
        """The producing application dies: what it had not sent fails, what it had sent is
        indeterminate (it will never hear back), and answers on their way are lost with it."""
        now = self.env.now
        self.settle(now)
        facts = self.model.facts
        for ids, *_ in self.blocked:
            facts.fail(ids, now)
        self.blocked.clear()
        for p, queue in enumerate(self.queues):
            ids, _ = queue.expire(float("inf"))
            if ids.shape[0]:
                facts.fail(ids, now)
            for batch in self.retries[p]:
                facts.indeterminate(batch.ids, now)
            self.retries[p].clear()
        for flying in self.inflight.values():
            for request in flying:
                request.completed_ms = now
                for batch in request.batches:
                    if not batch.done:
                        facts.indeterminate(batch.ids, now)
                        batch.done = True
            flying.clear()
        self.unsettled = []
        self.buffer_used = 0.0
        self._token += 1
        self.wake_at = INF
        self._dirty_all()

    def on_stop(self) -> None:
        """A stopped application is modelled like a crash: close() with a zero timeout."""
        self.on_crash()

    def on_resume(self) -> None:
        """A frozen producer runs again: the send() calls it missed happen now, and the sender
        sends what is due (answers that reached it meanwhile are settled first)."""
        self._admit()
        self.step()

    def on_restart(self) -> None:
        if self.idempotent:
            self._bump_epoch()  # a new producer instance gets a new producer id
        self.step()

    def idle(self) -> bool:
        """Nothing waiting, nothing unanswered (the producer has flushed)."""
        if self.blocked or any(self.queues) or any(self.retries) or self.unarrived:
            return False
        return not any(
            r.completed_ms is None or r.completed_ms > self.env.now
            for f in self.inflight.values()
            for r in f
        )

    def materialize(self) -> None:
        """Turn answers still on their way into real network messages (before a network fault,
        so a cut can hold them like TCP would)."""
        now = self.env.now
        keep = []
        pending = []
        for arrival, seq, request in self.unsettled:
            if arrival > now and request.completed_ms == arrival:
                pending.append(request)
            else:
                keep.append((arrival, seq, request))
        heapq.heapify(keep)
        self.unsettled = keep
        self.channel_last = {}
        for request in pending:
            request.completed_ms = None
            broker = self.model.brokers[request.broker]
            errors = [pr.NONE] * len(request.batches)
            self.model.net.send(
                broker.name, self.name, 100, lambda r=request, e=errors: self._answer_now(r, e)
            )
