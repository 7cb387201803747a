"""A partition replica on one broker: leader or follower, ISR, high watermark, idempotence state.

The leader appends producer batches, learns each follower's log end offset from its fetches,
advances the high watermark to the minimum LEO of the ISR (Kafka design, "Replication"), and
completes acks=all requests whose batches the HW has passed. It proposes ISR changes to the
controller (AlterPartition, KIP-497): a follower that has not caught up to the leader's LEO for
`replica.lag.time.max.ms` is removed, one that caught up to the HW is added back. While a change
is in flight the HW is computed over the *maximal* ISR (current plus proposed members), so a
shrink never lets the HW run ahead of a replica the controller still counts as in sync.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from models.kafka import protocol as pr

if TYPE_CHECKING:
    from models.kafka.broker import Broker
    from models.kafka.log import ReplicaLog
    from models.kafka.store import RecordStore

PRODUCER_STATE_BATCHES = 5  # the broker keeps the last 5 batches per producer (ProducerStateEntry)
REBUILD_SCAN_BATCHES = 20_000  # how far back a new leader scans its log for producer state


class Election:
    """A leader change as it happened (kept for attributing later truncations to their cause)."""

    __slots__ = ("epoch", "leader", "leader_power_cut", "start_offset", "t_ms", "unclean")

    def __init__(
        self,
        epoch: int,
        leader: int,
        start_offset: int,
        unclean: bool,
        leader_power_cut: bool,
        t_ms: float,
    ):
        self.epoch = epoch
        self.leader = leader
        self.start_offset = start_offset
        self.unclean = unclean
        self.leader_power_cut = leader_power_cut
        self.t_ms = t_ms


class PartitionShared:
    """What all replicas of one partition share in the simulation: the record store and the
    record of elections (a simulation bookkeeping, not Kafka state)."""

    def __init__(self, partition: int, replicas: list[int], store: RecordStore):
        self.partition = partition
        self.replicas = replicas
        self.store = store
        self.elections: list[Election] = []
        self.max_hw = 0  # the highest HW a leader of it reached (for the invariant checks)


class FollowerState:
    """What the leader knows of one follower (Replica.scala's remote replica state)."""

    __slots__ = ("last_caught_up_ms", "last_fetch_leo", "last_fetch_ms", "leo", "sent_hw")

    def __init__(self, now: float):
        self.leo = -1  # unknown until the first fetch
        self.sent_hw = -1  # the HW last sent to this follower (fetch sessions, KIP-227)
        self.last_fetch_ms = now
        self.last_fetch_leo = 0  # leader LEO at the previous fetch
        self.last_caught_up_ms = now


class ProducerEntry:
    __slots__ = ("batches", "last_seq")

    def __init__(self) -> None:
        self.last_seq = -1
        self.batches: deque[tuple[int, int, int]] = deque(maxlen=PRODUCER_STATE_BATCHES)


class PartitionReplica:
    """One broker's replica of one partition."""

    def __init__(self, broker: Broker, shared: PartitionShared, log: ReplicaLog):
        self.broker = broker
        self.partition = shared.partition
        self.shared = shared
        self.replicas = shared.replicas
        self.log = log
        self.is_leader = False
        self.leader = -1  # leader as this broker knows it (-1: none)
        self.leader_epoch = -1
        self.partition_epoch = -1
        self.isr: list[int] = []
        self.proposed_isr: list[int] | None = None  # AlterPartition in flight
        self.proposed_at = 0.0
        self.followers: dict[int, FollowerState] = {}
        self.ack_waiters: deque[tuple[int, pr.DelayedProduce, int]] = deque()
        self.consumer_waiters: list[Any] = []  # consumer fetch sessions parked here (consumer.py)
        self.producers: dict[int, ProducerEntry] = {}
        self.power_cut = False  # the log lost its unflushed tail to a power loss
        self.hw_since = 0.0  # when the current high watermark took effect

    # --- leadership ------------------------------------------------------------------------------
    def become_leader(self, epoch: int, partition_epoch: int, isr: list[int], now: float) -> None:
        self.is_leader = True
        self.leader = self.broker.id
        self.leader_epoch = epoch
        self.partition_epoch = partition_epoch
        self.isr = list(isr)
        self.proposed_isr = None
        self.log.start_epoch(epoch)
        self.followers = {r: FollowerState(now) for r in self.replicas if r != self.broker.id}
        self.ack_waiters.clear()
        self._rebuild_producer_state()
        self.maybe_advance_hw(now)

    def become_follower(
        self, leader: int, epoch: int, partition_epoch: int, isr: list[int]
    ) -> list[tuple[int, pr.DelayedProduce, int]]:
        """Stop leading (if we did); returns the acks=all waiters that must now fail."""
        waiting = list(self.ack_waiters) if self.is_leader else []
        self.is_leader = False
        self.leader = leader
        self.leader_epoch = epoch
        self.partition_epoch = partition_epoch
        self.isr = list(isr)
        self.proposed_isr = None
        self.followers = {}
        self.ack_waiters.clear()
        return waiting

    @property
    def maximal_isr(self) -> list[int]:
        if self.proposed_isr is None:
            return self.isr
        return self.isr + [r for r in self.proposed_isr if r not in self.isr]

    # --- producer appends ------------------------------------------------------------------------
    def append_from_producer(self, batch: pr.ProducerBatch, now: float) -> tuple[int, int, int]:
        """Append one producer batch; returns (error, base offset, end offset)."""
        pid = batch.producer_id
        entry = None
        if pid >= 0:
            entry = self.producers.get(pid)
            if entry is not None:
                first, last = batch.base_seq, batch.base_seq + batch.count - 1
                if first != entry.last_seq + 1:
                    for f, l_, base in entry.batches:
                        if f == first and l_ == last:
                            # a retry of a batch this leader already has: answer, do not append
                            return pr.DUPLICATE_SEQUENCE_NUMBER, base, base + batch.count
                    # a gap (an earlier batch failed) or an old batch: retried in order
                    return pr.OUT_OF_ORDER_SEQUENCE_NUMBER, -1, -1
            elif batch.base_seq != 0:
                # an unknown producer must start at sequence 0 (its state was lost with the
                # log, e.g. after a power loss): the producer bumps its epoch (KIP-360)
                return pr.OUT_OF_ORDER_SEQUENCE_NUMBER, -1, -1
            else:
                entry = self.producers[pid] = ProducerEntry()
        store = self.shared.store
        pos = store.append(batch.ids, batch.nbytes, pid, batch.base_seq, batch.max_ts)
        base = self.log.append_batch(
            pos, batch.count, batch.nbytes, self.leader_epoch, batch.max_ts, now
        )
        if entry is not None:
            entry.last_seq = batch.base_seq + batch.count - 1
            entry.batches.append((batch.base_seq, entry.last_seq, base))
        if len(self.maximal_isr) == 1:
            self.maybe_advance_hw(now)  # the leader alone in sync: its own LEO is the HW
        return pr.NONE, base, base + batch.count

    def _rebuild_producer_state(self) -> None:
        """A new leader reads the producer ids and sequences of its log's latest batches
        (Kafka keeps them in producer snapshots and the log; here the log's batch table)."""
        self.producers = {}
        store, log = self.shared.store, self.log
        if not log.ext_off:
            return
        scanned = 0
        for k in range(len(log.ext_off) - 1, -1, -1):
            start_off = log.ext_off[k]
            end_off = log.ext_off[k + 1] if k + 1 < len(log.ext_off) else log.leo
            if end_off <= start_off:
                continue
            first_pos = log.ext_pos[k]
            last_pos = first_pos + (end_off - start_off) - 1
            b = store.batch_index(last_pos)
            while b >= 0 and store.b_pos[b] >= first_pos and scanned < REBUILD_SCAN_BATCHES:
                pid = store.b_producer[b]
                if pid >= 0:
                    entry = self.producers.get(pid)
                    if entry is None:
                        entry = self.producers[pid] = ProducerEntry()
                        entry.last_seq = store.b_seq[b] + store.b_count[b] - 1
                    if len(entry.batches) < PRODUCER_STATE_BATCHES:
                        base = start_off + store.b_pos[b] - first_pos
                        seq = store.b_seq[b]
                        entry.batches.appendleft((seq, seq + store.b_count[b] - 1, base))
                b -= 1
                scanned += 1
            if scanned >= REBUILD_SCAN_BATCHES:
                break

    # --- follower progress, high watermark --------------------------------------------------------
    def follower_fetched(
        self, follower: int, fetch_offset: int, now: float, state: FollowerState
    ) -> None:
        """Record a follower's fetch position (Replica.updateFetchState); `state` is its
        FollowerState (the leader knows every follower of the partition)."""
        log = self.log
        leo = log.leo
        if fetch_offset >= leo:
            state.last_caught_up_ms = now
        elif fetch_offset >= state.last_fetch_leo:
            state.last_caught_up_ms = max(state.last_caught_up_ms, state.last_fetch_ms)
        moved = fetch_offset > state.leo
        state.leo = fetch_offset
        state.last_fetch_ms = now
        state.last_fetch_leo = leo
        if follower not in self.isr and self.proposed_isr is None:
            self._maybe_expand(follower, fetch_offset)
        if moved and fetch_offset > log.hw:
            self.maybe_advance_hw(now)

    def maybe_advance_hw(self, now: float) -> None:
        log = self.log
        hw = log.leo
        followers = self.followers
        for r in self.maximal_isr:
            if r != self.broker.id:
                state = followers.get(r)
                leo = state.leo if state is not None else -1
                if leo < hw:
                    hw = leo
        if hw > log.hw:
            if self.broker.elr_guard and len(self.isr) < self.broker.min_isr:
                return  # KIP-966: the HW only advances with at least min.insync.replicas in sync
            if self.consumer_waiters:
                # consumers that fetched while the old HW held are answered with it first
                self.broker.model.settle_consumers(self, now)
            log.hw = hw
            self.hw_since = now
            if hw > self.shared.max_hw:
                self.shared.max_hw = hw
            self.broker.on_hw_advanced(self, now)

    def complete_acks(self, min_isr: int) -> list[tuple[pr.DelayedProduce, int, int]]:
        """acks=all batches the HW has passed: (request, batch index, error)."""
        hw = self.log.hw
        waiters = self.ack_waiters
        done = []
        enough = len(self.isr) >= min_isr
        while waiters and waiters[0][0] <= hw:
            _, delayed, index = waiters.popleft()
            # Partition.checkEnoughReplicasReachOffset: the HW passed, but if the ISR shrank
            # below min.insync.replicas meanwhile the append is not acknowledged.
            done.append(
                (delayed, index, pr.NONE if enough else pr.NOT_ENOUGH_REPLICAS_AFTER_APPEND)
            )
        return done

    # --- ISR changes (AlterPartition) -------------------------------------------------------------
    def _maybe_expand(self, follower: int, fetch_offset: int) -> None:
        # A follower rejoins once it has caught up to the HW and reached the current epoch.
        epoch_start = self.log.epochs[-1][1] if self.log.epochs else 0
        if fetch_offset >= self.log.hw and fetch_offset >= epoch_start:
            self.propose_isr([*self.isr, follower])

    def check_isr_lag(self, now: float, lag_max_ms: float) -> None:
        """isr-expiration task: drop followers not caught up for replica.lag.time.max.ms."""
        if not self.is_leader or self.proposed_isr is not None:
            return
        me, followers = self.broker.id, self.followers
        lagging = [
            r
            for r in self.isr
            if r != me and r in followers and now - followers[r].last_caught_up_ms > lag_max_ms
        ]
        if lagging:
            self.propose_isr([r for r in self.isr if r not in lagging])

    def propose_isr(self, new_isr: list[int]) -> None:
        order = {r: i for i, r in enumerate(self.replicas)}
        self.proposed_isr = sorted(set(new_isr), key=lambda r: order.get(r, len(order)))
        self.broker.send_alter_partition(self, self.proposed_isr)

    def isr_change_answered(
        self, accepted: bool, isr: list[int], partition_epoch: int, now: float
    ) -> None:
        if not accepted:
            self.proposed_isr = None
            return
        old = self.isr
        self.isr = list(isr)
        self.partition_epoch = partition_epoch
        self.proposed_isr = None
        self.broker.isr_changed(self, old, now)
        self.maybe_advance_hw(now)
