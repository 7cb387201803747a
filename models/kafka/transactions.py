"""The transactional consume-transform-produce pipeline: transactions, their coordinator, the
output topic with its markers and last stable offset, and its downstream reader.

With `consumer.exactly_once` every consumer is a consume-transform-produce loop. Input partition
p is transformed into output partition p by a transactional producer whose `transactional.id` is
`<group.id>-<p>` (one producer per input partition, as Kafka Streams' first exactly-once mode
does): each poll of p is one transaction, `beginTransaction`, one output record per input record
(`send`), `sendOffsetsToTransaction` with the poll's end offset, `commitTransaction`.

- **Coordinator.** The transaction coordinator of a transactional.id is the leader of partition
  `crc32(id) % transaction.state.log.num.partitions` of `__transaction_state`, replicas
  `(q + i) % brokers`. Simplified like the group coordinator: the first replica that is up and
  registered acts (failover is instant, no election of `__transaction_state` is simulated), and
  its state (ongoing, prepare-commit, complete) is durable as soon as one replica is up. With no
  replica up, EndTxn waits (retried every `retry.backoff.ms`).
- **Commit.** EndTxn reaches the coordinator one network delay after the poll ends; it writes
  PrepareCommit, then the COMMIT markers to the output partition and the transaction's offsets
  to `__consumer_offsets` (the group's committed offset moves only then). A request already sent
  completes even if the consumer crashes right after.
- **Abort.** A consumer that crashes (or is paused, or leaves) mid-poll leaves its transaction
  open. The next owner of p initialises the same transactional.id (InitProducerId): the
  coordinator bumps the epoch, fences the old producer and writes ABORT markers. A transaction no
  one takes over is aborted by the coordinator's timeout check
  (`transaction.abort.timed.out.transaction.cleanup.interval.ms`) once older than
  `transaction.timeout.ms`. A new owner waits for a commit in flight (its OffsetFetch would see
  the pending offsets, KIP-447's UNSTABLE_OFFSET_COMMIT) before it starts.
- **Output topic, LSO, isolation.** The output partition is the list of output records in
  append order with the transaction each belongs to. Its last stable offset (LSO) is the first
  record of the oldest undecided transaction. The downstream reader is always caught up: with
  `read_committed` it sees a committed record once the LSO has passed it (aborted records are
  skipped, as the aborted-transaction index lets a Kafka consumer do); with `read_uncommitted`
  it sees every record as soon as it is written, aborted ones included. A delivery in the
  history is that reader seeing the output record of an input message (output records carry the
  input message id), so duplicates and loss are judged on the output as downstream sees it.

Simplified (docs/kafka.md): the output topic is not replicated through the replication model
(its records are durable once written, like the offsets); markers and the reader's fetches are
not timed separately (a record becomes visible when its transaction is decided); the time
commitTransaction blocks the loop is not charged to processing; a live consumer's transaction is
never older than transaction.timeout.ms (only abandoned ones time out).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.node import UP

if TYPE_CHECKING:
    from models.kafka.cluster import KafkaModel
    from models.kafka.consumer import Consumer

OPEN, COMMITTING, COMMITTED, ABORTED = range(4)
TXN_BYTES = 200
# Cause of a duplicate a read_uncommitted reader sees: the aborted output, then the redo's.
DUP_ABORTED_READ_UNCOMMITTED = "aborted_read_uncommitted"


class Txn:
    """One transaction of one transactional.id (one input partition)."""

    __slots__ = (
        "decided_ms",
        "epoch",
        "offset",
        "owner",
        "partition",
        "records",
        "start_ms",
        "state",
    )

    def __init__(self, partition: int, epoch: int, owner: str, start_ms: float):
        self.partition = partition
        self.epoch = epoch
        self.owner = owner
        self.start_ms = start_ms
        self.offset: tuple[int, int] | None = None  # sendOffsetsToTransaction (offset, epoch)
        self.records = 0
        self.decided_ms = float("inf")
        self.state = OPEN


class OutputPartition:
    """One partition of the output topic: (transaction, input ids, dup cause) in append order,
    the state of each transaction, and how far the read_committed reader got (the LSO)."""

    def __init__(self) -> None:
        self.chunks: list[tuple[Txn, np.ndarray, str]] = []
        self.read = 0  # chunks below the LSO, already read or skipped
        self.lso_ms = -float("inf")  # when the LSO last moved


class Transactions:
    """Transactional producers (one per input partition), their coordinators and the output."""

    def __init__(self, model: KafkaModel):
        self.model = model
        self.env = model.env
        cfg = model.config
        self.cfg = cfg.consumer
        self.read_committed = cfg.consumer.output_isolation_level == "read_committed"
        n = cfg.topic.partitions
        brokers = cfg.brokers
        rf = min(cfg.broker.transaction_state_log_replication_factor, brokers)
        self.coordinator_replicas: list[list[int]] = []
        for p in range(n):
            tid = f"{cfg.consumer.group_id}-{p}"
            q = zlib.crc32(tid.encode()) % cfg.broker.transaction_state_log_num_partitions
            self.coordinator_replicas.append([(q + i) % brokers for i in range(rf)])
        self.txn: list[Txn | None] = [None] * n
        self.epoch = [0] * n  # producer epoch of each transactional.id
        self.owner: list[str | None] = [None] * n  # the producer holding the current epoch
        self.out = [OutputPartition() for _ in range(n)]
        self.in_flight = [0] * n  # EndTxn(commit) requests not yet applied, per partition
        self.waiting: list[list[Callable[[], None]]] = [[] for _ in range(n)]
        self.committed = 0
        self.aborted = 0
        self.aborted_records = 0
        self.env.process(self._timeouts())

    # --- coordinator -----------------------------------------------------------------------------
    def coordinator(self, p: int) -> Any:
        """The broker coordinating partition p's transactional.id, or None when none is up."""
        fenced = self.model.controller.fenced
        for b in self.coordinator_replicas[p]:
            broker = self.model.brokers[b]
            if broker.state == UP and broker.registered and not fenced.get(b, False):
                return broker
        return None

    def _one_way_ms(self, consumer: Consumer, p: int) -> float:
        coordinator = self.coordinator(p)
        if coordinator is None:
            return 0.0
        return float(self.model.net.delay(consumer.name, coordinator.name, TXN_BYTES))

    # --- the producer's side ---------------------------------------------------------------------
    def fence(self, p: int, consumer: Consumer) -> None:
        """InitProducerId by the new owner of p: bump the epoch, abort what the old one left."""
        self.epoch[p] += 1
        self.owner[p] = consumer.name
        txn = self.txn[p]
        if txn is not None and txn.state == OPEN:
            when = self.env.now + self._one_way_ms(consumer, p)
            self._at(when, lambda t: self._abort(txn, "fenced_by_new_owner", t))

    def committing(self, p: int) -> bool:
        """Whether partition p's transaction has its EndTxn in flight (offsets pending)."""
        return self.in_flight[p] > 0

    def open_for(self, p: int, owner: str) -> bool:
        """Whether `owner` has a transaction open on partition p (records sent, not committed)."""
        txn = self.txn[p]
        return txn is not None and txn.state == OPEN and txn.owner == owner == self.owner[p]

    def when_decided(self, p: int, callback: Callable[[], None]) -> None:
        self.waiting[p].append(callback)

    def send(self, consumer: Consumer, p: int, ids: np.ndarray, times: Any, dup_cause: str) -> None:
        """Output records for processed input records (ids -1: removed by compaction, none)."""
        if self.owner[p] != consumer.name:
            return  # a fenced (zombie) producer: ProducerFencedException, nothing is written
        if ids.shape[0] and ids.min() < 0:
            keep = ids >= 0
            ids = ids[keep]
            times = times[keep] if np.ndim(times) else times
        if not ids.shape[0]:
            return
        txn = self.txn[p]
        if txn is None or txn.state != OPEN or txn.owner != consumer.name:
            first = float(times[0]) if np.ndim(times) else float(times)
            txn = Txn(p, self.epoch[p], consumer.name, first)
            self.txn[p] = txn
        txn.records += ids.shape[0]
        self.out[p].chunks.append((txn, ids, dup_cause))
        if not self.read_committed:
            cause = DUP_ABORTED_READ_UNCOMMITTED
            self.model.facts.deliver(ids, times, cause)

    def commit(self, consumer: Consumer, p: int, offset: int, epoch: int, end_ms: float) -> None:
        """The poll ended at `end_ms`: sendOffsetsToTransaction + commitTransaction."""
        txn = self.txn[p]
        if self.owner[p] != consumer.name:
            return
        if txn is None or txn.state != OPEN or txn.owner != consumer.name:
            # a poll with no output (every record compacted away): offsets alone
            txn = Txn(p, self.epoch[p], consumer.name, end_ms)
            self.txn[p] = txn
        txn.offset = (offset, epoch)
        txn.state = COMMITTING
        self.in_flight[p] += 1
        arrival = end_ms + self._one_way_ms(consumer, p)
        self._at(arrival, lambda t: self._end_txn(txn, t))

    # --- coordinator's side ----------------------------------------------------------------------
    def _at(self, t: float, action: Callable[[float], None]) -> None:
        """Run `action(t)` at `t`; at once if `t` has passed (a lazily settled poll end: nothing
        happened since, the model settles everything before any fault)."""
        delay = t - self.env.now
        if delay <= 0.0:
            action(t)
        else:
            self.env.timeout(delay).callbacks.append(lambda _e: action(self.env.now))

    def _end_txn(self, txn: Txn, now: float) -> None:
        """EndTxn(commit) reached the coordinator: PrepareCommit, markers, offsets."""
        p = txn.partition
        group = self.model.group
        if self.coordinator(p) is None or group.coordinator() is None:
            retry = self.model.config.consumer.retry_backoff_ms
            self.env.timeout(retry).callbacks.append(lambda _e: self._end_txn(txn, self.env.now))
            return
        txn.state = COMMITTED
        txn.decided_ms = now
        self.committed += 1
        self.in_flight[p] -= 1
        if txn.offset is not None:
            group.commit_transactional(p, *txn.offset)
        self._advance(p, now)
        self._wake(p)

    def _abort(self, txn: Txn, reason: str, now: float) -> None:
        if txn.state != OPEN:
            return
        p = txn.partition
        if self.coordinator(p) is None:
            retry = self.model.config.consumer.retry_backoff_ms
            self.env.timeout(retry).callbacks.append(
                lambda _e: self._abort(txn, reason, self.env.now)
            )
            return
        txn.state = ABORTED
        txn.decided_ms = now
        self.aborted += 1
        self.aborted_records += txn.records
        self.model.ctx.event(
            "transaction_aborted",
            self.coordinator(p).name,
            partition=p,
            producer=txn.owner,
            records=txn.records,
            reason=reason,
        )
        self._advance(p, now)
        self._wake(p)

    def _wake(self, p: int) -> None:
        waiting, self.waiting[p] = self.waiting[p], []
        for callback in waiting:
            # as an event: a decision settled lazily inside a consumer's flush must not start
            # another consumer's (or the same one's) fetching in the middle of it
            self.env.timeout(0).callbacks.append(lambda _e, cb=callback: cb())

    def _timeouts(self) -> Any:
        """The coordinator aborts transactions left open longer than transaction.timeout.ms."""
        interval = (
            self.model.config.broker.transaction_abort_timed_out_transaction_cleanup_interval_ms
        )
        timeout = self.cfg.transaction_timeout_ms
        while True:
            yield self.env.timeout(interval)
            self.model.settle_all()
            now = self.env.now
            consumers = {c.name: c for c in self.model.consumers}
            for txn in self.txn:
                if txn is None or txn.state != OPEN:
                    continue
                owner = consumers.get(txn.owner)
                abandoned = (
                    owner is None or owner.state != UP or txn.owner != self.owner[txn.partition]
                )
                if abandoned and now - txn.start_ms >= timeout:
                    self._abort(txn, "transaction_timeout", now)

    # --- the downstream reader -------------------------------------------------------------------
    def _advance(self, p: int, now: float) -> None:
        """The LSO moves past decided transactions: read_committed reads what they committed."""
        out = self.out[p]
        chunks = out.chunks
        moved = False
        while out.read < len(chunks):
            txn, ids, cause = chunks[out.read]
            state = txn.state
            if state == COMMITTED:
                if self.read_committed:
                    self.model.facts.deliver(ids, max(now, txn.decided_ms), cause)
            elif state != ABORTED:
                break  # the first undecided transaction: the last stable offset
            out.read += 1
            moved = True
        if moved:
            out.lso_ms = now
        if out.read > 4096 and out.read * 2 > len(chunks):
            del chunks[: out.read]  # forget what every reader is past
            out.read = 0

    def settled(self) -> bool:
        """Every transaction decided and every output record below the LSO (drain check)."""
        for p, txn in enumerate(self.txn):
            if self.in_flight[p] or (txn is not None and txn.state == OPEN):
                return False
            if self.out[p].read < len(self.out[p].chunks):
                return False
        return True


def transactions_summary(txns: Transactions | None) -> dict[str, int]:
    """The transactions' counts for the model summary (zeros without exactly_once)."""
    return {
        "transactions_committed": txns.committed if txns is not None else 0,
        "transactions_aborted": txns.aborted if txns is not None else 0,
        "aborted_output_records": txns.aborted_records if txns is not None else 0,
    }
