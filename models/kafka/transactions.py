"""The transactional consume-transform-produce pipeline: transactions, their coordinator, the
output topic with its markers and last stable offset, and its downstream reader.

With `consumer.exactly_once` every consumer is a consume-transform-produce loop: input partition p
is transformed into output partition p, each poll of p is one transaction: `beginTransaction`, one
output record per input record (`send`), `sendOffsetsToTransaction` with the poll's end offset,
`commitTransaction`. `consumer.transactional_id_scope` says who owns the transactional.ids:
`partition` (`<group.id>-<p>`, one producer per input partition, Kafka Streams' first exactly-once
mode) or `consumer` (`<group.id>-<consumer>`, one per consumer, KIP-447 / exactly_once_v2).

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
  open. Per partition: the next owner of p initialises the same transactional.id
  (InitProducerId): the coordinator bumps the epoch, fences the old producer and writes ABORT
  markers at once. Per consumer: the new owner has its own id, so the old transaction stays open
  until its consumer restarts (InitProducerId of its id) or the coordinator's timeout check
  (`transaction.abort.timed.out.transaction.cleanup.interval.ms`) finds it older than
  `transaction.timeout.ms`; a zombie that comes back is fenced by the group generation when it
  sends its offsets (KIP-447) and aborts. A new owner waits for a commit in flight (its
  OffsetFetch would see the pending offsets, KIP-447's UNSTABLE_OFFSET_COMMIT) before it starts.
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

import functools
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from models.kafka.facts import DUP_PRODUCER_RETRY
from simulator.node import UP

if TYPE_CHECKING:
    from models.kafka.cluster import KafkaModel
    from models.kafka.consumer import Consumer

OPEN, COMMITTING, COMMITTED, ABORTED = range(4)
TXN_BYTES = 200
# Cause of a duplicate a read_uncommitted reader sees: the aborted output, then the redo's.
DUP_ABORTED_READ_UNCOMMITTED = "aborted_read_uncommitted"


class Txn:
    """One transaction of one transactional.id, writing one output partition."""

    __slots__ = (
        "decided_ms",
        "offset",
        "owner",
        "partition",
        "records",
        "seq",
        "start_ms",
        "state",
        "tid",
    )

    def __init__(self, seq: int, tid: str, partition: int, owner: str, start_ms: float):
        self.seq = seq
        self.tid = tid
        self.partition = partition
        self.owner = owner
        self.start_ms = start_ms
        self.offset: tuple[int, int] | None = None  # sendOffsetsToTransaction (offset, epoch)
        self.records = 0
        self.decided_ms = float("inf")
        self.state = OPEN


class OutputPartition:
    """One partition of the output topic: (transaction, input ids, dup cause) in append order,
    and how far the read_committed reader got (the LSO)."""

    def __init__(self) -> None:
        self.chunks: list[tuple[Txn, np.ndarray, str]] = []
        self.read = 0  # chunks below the LSO, already read or skipped


class Transactions:
    """Transactional producers, their coordinators, the output topic and its reader."""

    def __init__(self, model: KafkaModel):
        self.model = model
        self.env = model.env
        cfg = model.config
        self.cfg = cfg.consumer
        self.per_partition = cfg.consumer.transactional_id_scope == "partition"
        self.read_committed = cfg.consumer.output_isolation_level == "read_committed"
        n = cfg.topic.partitions
        self._replicas: dict[str, list[int]] = {}
        # per (partition, producer): its latest transaction on that partition
        self.current: dict[tuple[int, str], Txn] = {}
        self.open: dict[int, Txn] = {}  # seq -> open transaction, in the order they began
        self.seq = 0
        self.owner: list[str | None] = [None] * n  # who may write p (took it last)
        self.out = [OutputPartition() for _ in range(n)]
        self.in_flight = [0] * n  # EndTxn(commit) requests not yet applied, per partition
        # per partition: the newest transaction whose offsets reached __consumer_offsets
        self.offsets_from = [0] * n
        self.waiting: list[list[Callable[[], None]]] = [[] for _ in range(n)]
        self.committed = 0
        self.aborted = 0
        self.aborted_records = 0
        self.env.process(self._timeouts())

    # --- coordinator -----------------------------------------------------------------------------
    def tid(self, p: int, consumer_name: str) -> str:
        """The transactional.id writing partition p for this consumer."""
        group = self.cfg.group_id
        return f"{group}-{p}" if self.per_partition else f"{group}-{consumer_name}"

    def coordinator(self, tid: str) -> Any:
        """The broker coordinating `tid` (__transaction_state leader), or None when none is up."""
        replicas = self._replicas.get(tid)
        if replicas is None:
            broker_cfg = self.model.config.broker
            brokers = self.model.config.brokers
            q = zlib.crc32(tid.encode()) % broker_cfg.transaction_state_log_num_partitions
            rf = min(broker_cfg.transaction_state_log_replication_factor, brokers)
            replicas = self._replicas[tid] = [(q + i) % brokers for i in range(rf)]
        fenced = self.model.controller.fenced
        for b in replicas:
            broker = self.model.brokers[b]
            if broker.state == UP and broker.registered and not fenced.get(b, False):
                return broker
        return None

    def _one_way_ms(self, consumer: Consumer, tid: str) -> float:
        coordinator = self.coordinator(tid)
        if coordinator is None:
            return 0.0
        return float(self.model.net.delay(consumer.name, coordinator.name, TXN_BYTES))

    # --- the producer's side ---------------------------------------------------------------------
    def fence(self, p: int, consumer: Consumer) -> None:
        """`consumer` takes partition p. Per partition: InitProducerId of p's transactional.id
        bumps its epoch, fences the old producer and aborts what it left open."""
        self.owner[p] = consumer.name
        if not self.per_partition:
            return
        tid = self.tid(p, consumer.name)
        when = self.env.now + self._one_way_ms(consumer, tid)
        for txn in list(self.open.values()):
            if txn.tid == tid:
                self._at(when, functools.partial(self._abort, txn, "fenced_by_new_owner"))

    def init_producer(self, consumer: Consumer) -> None:
        """A restarted consumer initialises its transactional.id (per consumer): the coordinator
        aborts the transactions its previous incarnation left open."""
        if self.per_partition:
            return
        tid = self.tid(0, consumer.name)
        when = self.env.now + self._one_way_ms(consumer, tid)
        for txn in list(self.open.values()):
            if txn.tid == tid:
                self._at(when, functools.partial(self._abort, txn, "fenced_by_restart"))

    def forget(self, consumer: Consumer) -> None:
        """`consumer` crashed: its producer instance is gone with its transactions in progress.
        They stay open on the coordinator (until fenced or timed out); a restarted consumer is a
        new producer that never writes into them, nor commits them."""
        for key in [key for key in self.current if key[1] == consumer.name]:
            del self.current[key]

    def abandon(self, p: int, consumer: Consumer) -> None:
        """`consumer` lost partition p without committing (onPartitionsLost, removed from the
        group): the loop aborts its transaction on p, and will not reuse it."""
        txn = self.current.pop((p, consumer.name), None)
        if txn is not None and txn.state == OPEN:
            when = self.env.now + self._one_way_ms(consumer, txn.tid)
            self._at(when, lambda t: self._abort(txn, "partitions_lost", t))

    def committing(self, p: int) -> bool:
        """Whether partition p has an EndTxn in flight (its offsets are pending)."""
        return self.in_flight[p] > 0

    def open_for(self, p: int, owner: str) -> bool:
        """Whether `owner` has a transaction open on partition p (records sent, not committed)."""
        txn = self.current.get((p, owner))
        return txn is not None and txn.state == OPEN and self._may_write(p, owner)

    def when_decided(self, p: int, callback: Callable[[], None]) -> None:
        self.waiting[p].append(callback)

    def _may_write(self, p: int, owner: str) -> bool:
        # per partition, a fenced producer's sends fail (ProducerFencedException); per consumer
        # a zombie still writes, and is fenced when it sends its offsets
        return not self.per_partition or self.owner[p] == owner

    def _open_txn(self, p: int, owner: str, start_ms: float) -> Txn:
        txn = self.current.get((p, owner))
        if txn is None or txn.state != OPEN:
            self.seq += 1
            txn = Txn(self.seq, self.tid(p, owner), p, owner, start_ms)
            self.current[(p, owner)] = txn
            self.open[txn.seq] = txn
        return txn

    def send(self, consumer: Consumer, p: int, ids: np.ndarray, times: Any, dup_cause: str) -> None:
        """Output records for processed input records (ids -1: removed by compaction, none)."""
        if not self._may_write(p, consumer.name):
            return
        if ids.shape[0] and ids.min() < 0:
            keep = ids >= 0
            ids = ids[keep]
            times = times[keep] if np.ndim(times) else times
        if not ids.shape[0]:
            return
        first = float(times[0]) if np.ndim(times) else float(times)
        txn = self._open_txn(p, consumer.name, first)
        txn.records += ids.shape[0]
        self.out[p].chunks.append((txn, ids, dup_cause))
        if not self.read_committed:
            # seen at once; a record seen before is either processed again (an earlier owner's
            # output was aborted: the reader saw it anyway) or in the input twice (a producer
            # retry without idempotence)
            redo = dup_cause != DUP_PRODUCER_RETRY
            again = DUP_ABORTED_READ_UNCOMMITTED if redo else DUP_PRODUCER_RETRY
            self.model.facts.deliver(ids, times, again)

    def commit(self, consumer: Consumer, p: int, offset: int, epoch: int, end_ms: float) -> None:
        """The poll ended at `end_ms`: sendOffsetsToTransaction + commitTransaction."""
        if not self._may_write(p, consumer.name):
            return
        txn = self._open_txn(p, consumer.name, end_ms)  # offsets alone if nothing was sent
        group = self.model.group
        arrival = end_ms + self._one_way_ms(consumer, txn.tid)
        if not self.per_partition and (
            group.owner.get(p) != consumer.name or consumer.member_generation != group.generation
        ):
            # KIP-447: TxnOffsetCommit with a stale generation is rejected; the loop aborts
            self._at(arrival, lambda t: self._abort(txn, "fenced_by_generation", t))
            return
        txn.offset = (offset, epoch)
        txn.state = COMMITTING
        del self.open[txn.seq]
        self.in_flight[p] += 1
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

    def _retry(self, action: Callable[[float], None]) -> None:
        """No coordinator up: the client retries after retry.backoff.ms."""
        retry = self.cfg.retry_backoff_ms
        self.env.timeout(retry).callbacks.append(lambda _e: action(self.env.now))

    def _end_txn(self, txn: Txn, now: float) -> None:
        """EndTxn(commit) reached the coordinator: PrepareCommit, markers, offsets."""
        p = txn.partition
        group = self.model.group
        if self.coordinator(txn.tid) is None or group.coordinator() is None:
            self._retry(lambda t: self._end_txn(txn, t))
            return
        txn.state = COMMITTED
        txn.decided_ms = now
        self.committed += 1
        self.in_flight[p] -= 1
        if txn.offset is not None and txn.seq > self.offsets_from[p]:
            # a producer commits its transactions one at a time (commitTransaction blocks), so
            # an older transaction's offsets never replace a newer one's: in the model an EndTxn
            # can arrive after a later one (a slow link, a coordinator that moved meanwhile)
            self.offsets_from[p] = txn.seq
            group.commit_transactional(p, *txn.offset)
        self._advance(p, now)
        self._wake(p)

    def _abort(self, txn: Txn, reason: str, now: float) -> None:
        if txn.state != OPEN:
            return
        coordinator = self.coordinator(txn.tid)
        if coordinator is None:
            self._retry(lambda t: self._abort(txn, reason, t))
            return
        p = txn.partition
        txn.state = ABORTED
        txn.decided_ms = now
        del self.open[txn.seq]
        self.aborted += 1
        self.aborted_records += txn.records
        self.model.ctx.event(
            "transaction_aborted",
            coordinator.name,
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
            self.env.timeout(0).callbacks.append(functools.partial(_call_ignoring_event, callback))

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
            for txn in list(self.open.values()):
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
        while out.read < len(chunks):
            txn, ids, cause = chunks[out.read]
            state = txn.state
            if state == COMMITTED:
                if self.read_committed:
                    self.model.facts.deliver(ids, max(now, txn.decided_ms), cause)
            elif state != ABORTED:
                break  # the first undecided transaction: the last stable offset
            out.read += 1
        if out.read > 4096 and out.read * 2 > len(chunks):
            del chunks[: out.read]  # forget what every reader is past
            out.read = 0

    def settled(self) -> bool:
        """Every transaction decided and every output record below the LSO (drain check)."""
        if self.open or any(self.in_flight):
            return False
        return all(out.read == len(out.chunks) for out in self.out)


def transactions_summary(txns: Transactions | None) -> dict[str, int]:
    """The transactions' counts for the model summary (zeros without exactly_once)."""
    return {
        "transactions_committed": txns.committed if txns is not None else 0,
        "transactions_aborted": txns.aborted if txns is not None else 0,
        "aborted_output_records": txns.aborted_records if txns is not None else 0,
    }


def _call_ignoring_event(callback: Callable[[], None], _event: Any) -> None:
    """A SimPy event callback that runs `callback` (the event itself is not needed)."""
    callback()
