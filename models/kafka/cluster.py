"""The Kafka system model: builds the cluster, feeds the workload, routes faults, reports gauges.

Topology: brokers broker0..N-1, one KRaft `controller`, producers `producer0..` and consumers
`consumer0..` (counts from `[workload]`), all on the core network. One topic; partition p has
replicas broker (p + i) % N for i < replication_factor, the first being the preferred leader.

The workload's messages become records at their intended time: key -> partition by hash (or the
sticky partitioner), value size from the workload, each producer handles its share. Everything
that happened lazily (answers on their way, consumer fetches) is *settled* up to now before any
fault, gauge sample or drain check, so faults always meet the exact state of that moment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from models.kafka import consumer as consumers_mod
from models.kafka import invariants as kafka_invariants
from models.kafka.broker import Broker
from models.kafka.compaction import Cleaner, cleaner_summary
from models.kafka.consumer import Consumer
from models.kafka.controller import Controller
from models.kafka.facts import WRITTEN_BELOW_POSITION, Facts, undelivered
from models.kafka.group import Group
from models.kafka.partition import PartitionShared
from models.kafka.placement import replicas_of
from models.kafka.producer import Producer
from models.kafka.store import RECORD_OVERHEAD_BYTES, RecordStore
from models.kafka.transactions import Transactions, transactions_summary
from simulator.history import ACKED
from simulator.model import InvariantViolation, SystemModel
from simulator.node import UP
from simulator.workload import make_workload

if TYPE_CHECKING:
    from models.kafka.config import KafkaConfig
    from models.kafka.log import Piece, ReplicaLog
    from models.kafka.partition import PartitionReplica
    from simulator.context import FaultRecord, RunContext
    from simulator.scenario import Fault

FEED_MS = 20.0  # the workload is turned into records this far ahead (vectorized chunks)
KEY_BYTES = 8  # a long key
STREAM_TABLE_MAX_KEYS = 4_000_000  # above, deliveries reach the history in recording order
NETWORK_FAULTS = ("partition", "heal", "delay", "packet_loss")


def hash_partition(keys: np.ndarray, partitions: int) -> np.ndarray:
    """The default partitioner: hash(key) % partitions (a multiplicative hash for murmur2)."""
    h = (keys.astype(np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    return (h % np.uint64(partitions)).astype(np.int64)


def streams_of_keys(
    keys: int, partitions: int, producers: int, partition: Callable[..., np.ndarray]
) -> np.ndarray | None:
    """Key -> (partition, producer) stream, when every key has one (keyed partitioner);
    `partition(keys, sizes, producer)` is the model's partitioner."""
    if keys > STREAM_TABLE_MAX_KEYS:
        return None
    all_keys = np.arange(keys, dtype=np.int64)
    n_producers = max(1, producers)
    parts = partition(all_keys, np.zeros(keys, dtype=np.int64), all_keys % n_producers)
    streams = parts * n_producers + all_keys % n_producers
    small = partitions * n_producers <= np.iinfo(np.uint16).max
    return streams.astype(np.uint16 if small else np.int64)


class KafkaModel(SystemModel):
    """Apache Kafka 4.0 in KRaft mode, one topic."""

    config: KafkaConfig

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        self.net: Any = ctx.network
        self.facts = Facts(ctx.history)
        self.brokers: list[Broker] = []
        self.producers: list[Producer] = []
        self.consumers: list[Consumer] = []
        self.partitions: list[PartitionShared] = []
        self._feeding = False
        self._sample_ms = ctx.env.now
        self._sticky_bytes: dict[int, int] = {}
        self.cleaner: Cleaner | None = None  # cleanup.policy=compact (compaction.py)
        self.transactions: Transactions | None = None  # consumer.exactly_once (transactions.py)

    # --- building ---------------------------------------------------------------------------------
    def build(self) -> None:
        cfg = self.config
        spec = self.spec
        n_brokers = cfg.brokers
        rf = cfg.topic.replication_factor
        self.workload = make_workload(self.ctx.rng, spec.workload, self.ctx.duration_ms)
        # size each partition's store for its expected share (+5%, Poisson spread and retries
        # grow it when needed): no doubling slack on millions of records
        expected = min(self.workload.profile.total, spec.workload.max_messages)
        per_partition = int(expected * 1.05 / cfg.topic.partitions) + 1024
        # the history too: growing it by halves would hold old and new arrays at once (up to
        # 2.5x its size at the peak); Poisson arrivals exceed the mean by 6 sd about never
        self.ctx.history.reserve(int(expected + 6.0 * expected**0.5) + 1024)
        self.facts.stream_of_key = self._streams_of_keys()
        for p in range(cfg.topic.partitions):
            replicas = replicas_of(p, n_brokers, rf)
            self.partitions.append(PartitionShared(p, replicas, RecordStore(per_partition)))
        self.brokers = [Broker(self, b) for b in range(n_brokers)]
        self.controller = Controller(self)
        self.producers = [Producer(self, i) for i in range(spec.workload.producers)]
        self.consumers = [Consumer(self, i) for i in range(spec.workload.consumers)]
        self.group = Group(self)
        names = [n.name for n in self.ctx.nodes.values()]
        self.net.connect_all(names)
        self.controller.bootstrap()
        leaders = {p: self.controller.leader_of(p) for p in range(cfg.topic.partitions)}
        for broker in self.brokers:
            broker.start()
        for producer in self.producers:
            producer.set_leaders(leaders)
        if cfg.topic.cleanup_policy == "compact":
            self.cleaner = Cleaner(self)
        if cfg.consumer.exactly_once:
            self.transactions = Transactions(self)
        self.group.start()  # after the transactions: the first owners fence their ids

    # --- workload ---------------------------------------------------------------------------------
    def start_workload(self) -> None:
        self._feeding = True
        self.env.process(self._feed())

    def _feed(self) -> Any:
        env = self.env
        history = self.ctx.history
        workload = self.workload
        producers = self.producers
        n_producers = len(producers)
        while self._feeding and not workload.exhausted:
            batch = workload.next_batch(env.now + FEED_MS)
            n = len(batch)
            if n:
                first = history.produce(batch.intended_ms, batch.keys, n)
                ids = np.arange(first, first + n, dtype=np.int32)
                sizes = batch.sizes + (KEY_BYTES + RECORD_OVERHEAD_BYTES)
                # Kafka orders records per producer and partition only, so every key is sent by
                # one producer (key % producers) and per-key order is a guarantee to check.
                owner = (batch.keys % n_producers).astype(np.int64)
                parts = self._partition(batch.keys, sizes, owner)
                if n_producers == 1:
                    producers[0].accept(ids, batch.intended_ms, parts, sizes)
                else:
                    # a small integer type makes the stable sort a radix sort (same order)
                    narrow = owner.astype(np.uint16) if n_producers <= 65_536 else owner
                    order = np.argsort(narrow, kind="stable")
                    counts = np.bincount(owner, minlength=n_producers)
                    bounds = np.concatenate(([0], np.cumsum(counts)))
                    ids, times = ids[order], batch.intended_ms[order]
                    parts, sizes = parts[order], sizes[order]
                    for k in np.flatnonzero(counts).tolist():
                        a, b = bounds[k], bounds[k + 1]
                        producers[k].accept(ids[a:b], times[a:b], parts[a:b], sizes[a:b])
            yield env.timeout(FEED_MS)

    def _partition(self, keys: np.ndarray, sizes: np.ndarray, producer: np.ndarray) -> np.ndarray:
        """Kafka's default partitioner: murmur2(key) % partitions (a multiplicative hash here);
        sticky: keyless records stay on one partition per batch.size bytes (KIP-794)."""
        n = self.config.topic.partitions
        if self.config.producer.partitioner == "default":
            return hash_partition(keys, n)
        batch = self.config.producer.batch_size
        out = np.empty(keys.shape[0], dtype=np.int64)
        for k in np.unique(producer).tolist():
            mask = producer == k
            cum = np.cumsum(sizes[mask]) + self._sticky_bytes.get(k, 0)
            self._sticky_bytes[k] = int(cum[-1])
            segment = (cum // batch).astype(np.uint64)
            h = (segment * np.uint64(2654435761) + np.uint64(k * 97)) & np.uint64(0xFFFFFFFF)
            out[mask] = (h % np.uint64(n)).astype(np.int64)
        return out

    def _streams_of_keys(self) -> np.ndarray | None:
        """Key -> (partition, producer) stream, when every key has one (keyed partitioner)."""
        if self.config.producer.partitioner != "default":
            return None
        workload = self.spec.workload
        return streams_of_keys(
            workload.keys, self.config.topic.partitions, workload.producers, self._partition
        )

    def stop_workload(self) -> None:
        """End of the measured phase: producers flush (close()) what they hold."""
        self.settle_all()
        self._feeding = False
        for producer in self.producers:
            producer.flushing = True
            producer._dirty_all()
            producer.step()

    # --- settling lazy facts ----------------------------------------------------------------------
    def settle_all(self) -> None:
        """Bring every lazily computed fact up to now (answers, consumer fetches, deliveries)."""
        now = self.env.now
        for producer in self.producers:
            if producer.unsettled:
                producer.settle(now)
        for broker in self.brokers:
            if broker.state == UP:
                for rep in broker.replicas.values():
                    if rep.consumer_waiters:
                        consumers_mod.settle(rep, now)
        for consumer in self.consumers:
            consumer.flush(now)

    def settle_consumers(self, rep: PartitionReplica, now: float) -> None:
        consumers_mod.settle(rep, now)

    def consumers_lost_leader(self, rep: PartitionReplica, now: float, reset: bool) -> None:
        if rep.consumer_waiters:
            consumers_mod.settle(rep, now)
            consumers_mod.abandon(rep, now, reset)

    def consumers_log_start_moved(self, rep: PartitionReplica, now: float) -> None:
        if rep.consumer_waiters:
            consumers_mod.settle(rep, now)

    def producers_lost_broker(self, broker: Broker, reset: bool) -> None:
        for producer in self.producers:
            producer.broker_lost(broker, reset)

    def unread_ids(self, rep: PartitionReplica, removed: list[Piece]) -> np.ndarray:
        """Records a leader deleted by retention: those never delivered are lost (resolved at the
        end against the history)."""
        return rep.log.ids(removed).copy()

    def page_cache_miss(self, broker: Broker, log: ReplicaLog, offset: int) -> bool:
        """Whether reading from `offset` misses the page cache: the broker wrote more than the
        page cache holds since (estimated as this partition's bytes behind x partitions led)."""
        behind = log.leo - offset
        if behind < 1000:
            return False
        cache = self.config.broker.page_cache_bytes
        share = max(1, len(broker.replicas))
        return log.bytes_between(offset, log.leo) * share > cache

    # --- lifecycle hooks of the runner ------------------------------------------------------------
    def drained(self) -> bool:
        self.settle_all()
        if self.consumers and self.group.rebalancing:
            return False
        if self.transactions is not None and not self.transactions.settled():
            return False
        if self._feeding or any(not p.idle() for p in self.producers):
            return False
        for p in range(self.config.topic.partitions):
            leader = self.controller.leader_of(p)
            if leader < 0:
                return False
            rep = self.brokers[leader].replicas[p]
            if not rep.is_leader or rep.log.hw < rep.log.leo:
                return False
        owners = {c.name: c for c in self.consumers}
        for p, owner in self.group.owner.items():
            if owners and (owner is None or p not in owners[owner].cursors):
                return False
        return all(c.caught_up(self.hw_of) for c in self.consumers)

    def final_read(self) -> None:
        self.settle_all()
        doomed = self._doomed_suffixes()
        self.facts.resolve(lambda: self._present(doomed))
        self._passed_over()

    def _passed_over(self) -> None:
        """Acknowledged records in a leader's log below where the group stands, never delivered
        to it, with no other fate: written after the group had passed their offsets (a log
        that lost records and was written again from below a consumer's position, while that
        position had no leader epoch to be validated against, KIP-320), they are skipped, as a
        real consumer skips them without noticing. (Transactions keep their own account.)"""
        if not self.consumers or self.transactions is not None:
            return
        history = self.ctx.history
        now = self.env.now
        members = {c.name: c for c in self.consumers}
        for p in range(len(self.partitions)):
            leader = self.controller.leader_of(p)
            if leader < 0:
                continue
            owner = members.get(self.group.owner.get(p) or "")
            cursor = owner.cursors.get(p) if owner is not None else None
            stands = cursor.position if cursor is not None else self.group.resume_offset(p)
            log = self.brokers[leader].replicas[p].log
            end = min(stands, log.leo)
            if end <= log.log_start:
                continue
            ids = undelivered(history, log, log.log_start, end)
            passed = (history.cause[ids] == 0) & (history.status[ids] == ACKED)
            if passed.any():
                history.skip(ids[passed], WRITTEN_BELOW_POSITION, now)

    def _doomed_suffixes(self) -> dict[tuple[int, int], int]:
        """Where each follower's log leaves its leader's, per (broker, partition).

        From there on its records are not the leader's: its next fetch truncates them (KIP-101),
        so the final read counts them as that truncation would, loss candidates with its cause,
        and `_present` leaves them out (a follower still catching up when the drain ended).
        Compacted logs, with holes at other offsets on each replica, are left as they are.
        """
        doomed: dict[tuple[int, int], int] = {}
        if self.config.topic.cleanup_policy == "compact":
            return doomed
        now = self.env.now
        for p in range(len(self.partitions)):
            leader = self.controller.leader_of(p)
            if leader < 0:
                continue  # any replica may lead next: what each holds counts
            lead = self.brokers[leader].replicas[p].log
            for broker in self.brokers:
                rep = broker.replicas.get(p)
                if rep is None or broker.id == leader:
                    continue
                log = rep.log
                start, split = max(log.log_start, lead.log_start), min(log.leo, lead.leo)
                if split > start:
                    mine = log.ids(log.pieces(start, split))
                    theirs = lead.ids(lead.pieces(start, split))
                    differ = np.flatnonzero(mine != theirs)
                    if differ.size:
                        split = start + int(differ[0])
                if split >= log.leo:
                    continue
                doomed[(broker.id, p)] = split
                cause = broker.truncation_cause(rep, split)
                self.facts.dropped(log.ids(log.pieces(split, log.leo)).copy(), cause, now)
        return doomed

    def _present(self, doomed: dict[tuple[int, int], int]) -> np.ndarray:
        """Records some replica still holds (on disk, whether its broker is up or not), short
        of the followers' `doomed` suffixes."""
        mask = np.zeros(self.ctx.history.n, dtype=bool)
        for broker in self.brokers:
            for rep in broker.replicas.values():
                log = rep.log
                end = doomed.get((broker.id, rep.partition), log.leo)
                for _, pos, count, _ in log.pieces(log.log_start, end):
                    mask[rep.shared.store.ids[pos : pos + count]] = True
        return mask

    def hw_of(self, p: int) -> int:
        leader = self.controller.leader_of(p)
        if leader >= 0:
            return self.brokers[leader].replicas[p].log.hw
        return max(b.replicas[p].log.hw for b in self.brokers if p in b.replicas)

    def gauges(self) -> dict[str, float]:
        self.settle_all()
        now = self.env.now
        states = self.controller.states
        span_s = max(1e-9, (now - self._sample_ms) / 1000.0)
        self._sample_ms = now
        queue_ms, bytes_in, bytes_out, produce_requests = 0.0, 0.0, 0.0, 0
        for broker in self.brokers:
            q, b_in, b_out, n_produce = broker.capacity.sample()
            queue_ms = max(queue_ms, q)
            bytes_in += b_in
            bytes_out += b_out
            produce_requests += n_produce
        first = states[0]
        leader0 = self.brokers[first.leader].replicas[0].log if first.leader >= 0 else None
        lag = 0
        if self.consumers:
            # per partition: HW minus the owner's position (the committed offset while the
            # partition has no owner)
            positions = {p: self.group.resume_offset(p) for p in self.group.partitions}
            for consumer in self.consumers:
                for p, cursor in consumer.cursors.items():
                    positions[p] = cursor.position
            for p, position in positions.items():
                lag += max(0, self.hw_of(p) - position)
        return {
            "under_replicated_partitions": float(self.controller.under_replicated()),
            "offline_partitions": float(self.controller.offline_partitions()),
            "isr_size_min": float(min(len(s.isr) for s in states.values())),
            "isr_size_p0": float(len(first.isr)),
            "leader_p0": float(first.leader),
            "leo_p0": float(leader0.leo) if leader0 is not None else float("nan"),
            "hw_p0": float(leader0.hw) if leader0 is not None else float("nan"),
            "consumer_lag": float(lag),
            "request_queue_time_ms": queue_ms,
            "bytes_in_per_s": bytes_in / span_s,
            "bytes_out_per_s": bytes_out / span_s,
            "produce_requests_per_s": produce_requests / span_s,
        }

    def summary(self) -> dict[str, float | int | str | None]:
        """The consumer group's record: rebalances and the consumption pause they cost."""
        group = self.group
        return {
            "rebalances": group.rebalances - 1 if group.rebalances else 0,  # not the initial one
            "unowned_partition_ms": round(group.unowned_partition_ms, 3),
            "offset_commits_failed": group.commits_failed,
            # transactions (zeros without exactly_once) and the log cleaner (zeros without
            # compaction): the keys are always there, so variants can be compared
            **transactions_summary(self.transactions),
            **cleaner_summary(self.cleaner),
        }

    def check_invariants(self) -> None:
        """log start <= HW <= LEO on every replica, and the log matching property: two replicas
        holding an offset written in the same leader epoch hold the same record there."""
        now = self.env.now
        for broker in self.brokers:
            for rep in broker.replicas.values():
                log = rep.log
                if not (log.log_start <= log.hw <= log.leo):
                    state = {"partition": rep.partition, "hw": log.hw, "leo": log.leo}
                    raise InvariantViolation(
                        now, broker.name, "log start <= high watermark <= log end offset", state
                    )
        for shared in self.partitions:
            p = shared.partition
            logs = [(b.name, b.replicas[p].log) for b in self.brokers if p in b.replicas]
            for name, log in logs:
                for offset, pos, epoch in zip(log.ext_off, log.ext_pos, log.ext_epoch, strict=True):
                    if offset < log.log_start or offset >= log.leo:
                        continue
                    for other_name, other in logs:
                        if other is log or not (other.log_start <= offset < other.leo):
                            continue
                        if other.epoch_at(offset) != epoch:
                            continue
                        (piece,) = other.pieces(offset, offset + 1)
                        if piece[1] != pos:
                            where: dict[str, Any] = {
                                "partition": p,
                                "offset": offset,
                                "other": other_name,
                            }
                            raise InvariantViolation(
                                now,
                                name,
                                "log matching: same offset and epoch, other record",
                                where,
                            )

        kafka_invariants.check(self)

    # --- faults -----------------------------------------------------------------------------------

    def resolve_target(self, target: str) -> list[str]:
        brokers = [b.name for b in self.brokers]
        if target in self.ctx.nodes:
            return [target]
        state = self.controller.states[0]
        if target in ("leader", "primary"):
            leader = state.leader if state.leader >= 0 else state.replicas[0]
            return [f"broker{leader}"]
        if target in ("a_follower", "a_replica", "followers", "replicas"):
            leader = state.leader if state.leader >= 0 else state.replicas[0]
            others = [r for r in state.replicas if r != leader]
            others.sort(key=lambda r: (r not in state.isr, state.replicas.index(r)))
            names = [f"broker{r}" for r in others]
            return names if target in ("followers", "replicas") else names[:1]
        if target in ("all_servers", "all_brokers"):
            return brokers
        if target == "a_consumer":
            return [c.name for c in self.consumers[:1]]
        if target == "consumers":
            return [c.name for c in self.consumers]
        if target == "producers":
            return [p.name for p in self.producers]
        if target in ("clients", "client_link"):
            return [p.name for p in self.producers] + [c.name for c in self.consumers]
        return super().resolve_target(target)

    def apply_fault(self, fault: Fault, nodes: list[str]) -> bool:
        """Settle everything up to now, then let the core apply the fault; lazily planned
        messages that the fault could reach are turned back into real ones."""
        self.settle_all()
        kind = fault.kind
        hit = set(nodes)
        if kind == "power_loss":
            for broker in self.brokers:
                if broker.name in hit:
                    broker.power_loss_coming = True
        for broker in self.brokers:
            if kind in NETWORK_FAULTS or broker.name in hit:
                broker.take_back_fetches()
        self._reach_clients(kind, hit)
        if fault.duration_s is not None and kind not in ("heal", "restart"):
            # runs just before the core ends the fault (it was scheduled first)
            self.env.timeout(fault.duration_s * 1000.0).callbacks.append(
                lambda _e: self._fault_ending(kind, hit)
            )
        return False

    def _fault_ending(self, kind: str, hit: set[str]) -> None:
        self.settle_all()
        self._reach_clients(kind, hit)

    def before_fault_end(self, record: FaultRecord) -> None:
        """A fault without a duration ends (a heal, a restart, the final phase): what was
        planned under it is withdrawn and planned again without it (a timed one has its own
        ending, scheduled when it began)."""
        if record.kind in ("heal", "restart") or record.duration_ms is not None:
            return
        self._fault_ending(record.kind, set(record.nodes))

    def _reach_clients(self, kind: str, hit: set[str]) -> None:
        """Withdraw the consumers' lazy plans the fault touches; fetch again once it applies."""
        touched: list[Consumer] = []
        if kind in NETWORK_FAULTS:
            for producer in self.producers:
                producer.materialize()
            touched = list(self.consumers)
        elif kind == "slow_consumer":
            touched = [c for c in self.consumers if c.name in hit]
        for consumer in touched:
            consumer.withdraw()
        if touched:

            def resume(_e: Any) -> None:
                for consumer in touched:
                    consumer.resume_fetching()

            self.env.timeout(0).callbacks.append(resume)
