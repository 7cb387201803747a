"""A Kafka broker: hosts partition replicas, serves produce and fetch requests, follows the
controller's metadata, heartbeats, and runs its periodic tasks (ISR expiration, HW checkpoint,
retention).

Faults, as Kafka lives them:
- crash (kill -9): the process dies, the page cache survives, the kernel resets its TCP
  connections so clients get a network error at once;
- power loss: the host vanishes; the page cache is gone (only written-back or fsynced data
  survives) and clients hear nothing until their request timeout;
- stop: controlled shutdown (leadership moved away by the controller, logs flushed);
- pause (a long GC): nothing is served and no heartbeat is sent; requests wait in the socket
  and are handled on resume, possibly by a broker that no longer leads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from models.kafka import protocol as pr
from models.kafka.capacity import Capacity
from models.kafka.facts import (
    LEADER_FAILED,
    NEVER_ARRIVED,
    NOT_FSYNCED,
    RETENTION,
    UNCLEAN_TRUNCATION,
)
from models.kafka.log import DISK_PUSH_MS, Piece, ReplicaLog
from models.kafka.partition import Election, PartitionReplica
from models.kafka.produce import DEFER_MS, BacklogEntry, LeaderProduce
from models.kafka.replication import ReplicaFetcher, complete_parked, handle_follower_fetch
from simulator.disk import Disk
from simulator.node import PAUSED, UP, Node

if TYPE_CHECKING:
    from models.kafka.cluster import KafkaModel

HOUSEKEEPING_MS = 1_000.0
ALTER_PARTITION_RETRY_MS = 5_000.0


class Broker(LeaderProduce, Node):
    """One broker process and its host (disk, page cache)."""

    def __init__(self, model: KafkaModel, broker_id: int):
        super().__init__(model.ctx, f"broker{broker_id}", role="server")
        self.model = model
        self.id = broker_id
        cfg = model.config.broker
        self.cfg = cfg
        self.min_isr = model.config.topic.min_insync_replicas
        self.flush_every = cfg.log_flush_interval_messages
        self.elr_guard = cfg.eligible_leader_replicas_enable
        self.fetch_response_max_bytes = float(cfg.replica_fetch_response_max_bytes)
        self.fetch_partition_max_bytes = float(cfg.replica_fetch_max_bytes)
        self.disk = Disk(self.ctx, self.name, self.ctx.spec.disk)
        self.disks.append(self.disk)
        self.capacity = Capacity(
            cfg.num_network_threads,
            cfg.num_io_threads,
            cfg.queued_max_requests,
            cfg.request_cpu_ms,
            cfg.cpu_ms_per_mb,
        )
        topic = model.config.topic
        self.replicas: dict[int, PartitionReplica] = {}
        for shared in model.partitions:
            if broker_id in shared.replicas:
                file = self.disk.file(f"p{shared.partition}.log")
                log = ReplicaLog(shared.store, file, topic.segment_bytes, topic.segment_ms)
                self.replicas[shared.partition] = PartitionReplica(self, shared, log)
        self.meta: dict[int, pr.PartitionState] = {}  # metadata as this broker last heard it
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self.parked: list[pr.FollowerFetch] = []  # follower fetches waiting for data
        self._purgatory_at = float("inf")
        self.backlog: list[BacklogEntry] = []  # requests and timers that reached it paused
        self.host_down = False
        self.power_loss_coming = False  # set by the model just before a power_loss fault
        self.clean_shutdown = True
        self.registered = True  # registered with the controller under this incarnation
        self.serving_since = self.env.now  # answers cannot leave before (pause, restart)
        self._next_isr_check = 0.0
        self._next_checkpoint = 0.0
        self._next_retention = 0.0

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        now = self.env.now
        cfg = self.cfg
        self._next_isr_check = now + cfg.replica_lag_time_max_ms / 2
        self._next_checkpoint = now + cfg.replica_high_watermark_checkpoint_interval_ms
        self._next_retention = now + cfg.log_retention_check_interval_ms
        self.spawn(self._heartbeats())
        self.spawn(self._housekeeping())

    def _heartbeats(self) -> Any:
        while True:
            self.model.controller.send_heartbeat(self)
            yield from self.sleep(self.cfg.broker_heartbeat_interval_ms)

    def _housekeeping(self) -> Any:
        cfg = self.cfg
        while True:
            yield from self.sleep(HOUSEKEEPING_MS)
            now = self.env.now
            for fetcher in self.fetchers.values():
                fetcher.watchdog(now)
            for rep in self.replicas.values():
                if (
                    rep.proposed_isr is not None
                    and now - rep.proposed_at > ALTER_PARTITION_RETRY_MS
                ):
                    rep.proposed_isr = None  # AlterPartition lost (controller down): try again
            if now >= self._next_isr_check:
                self._next_isr_check = now + cfg.replica_lag_time_max_ms / 2
                for rep in self.replicas.values():
                    rep.check_isr_lag(now, cfg.replica_lag_time_max_ms)
            if now >= self._next_checkpoint:
                self._next_checkpoint = now + cfg.replica_high_watermark_checkpoint_interval_ms
                for rep in self.replicas.values():
                    rep.log.hw_checkpoint = rep.log.hw
            if now >= self._next_retention:
                self._next_retention = now + cfg.log_retention_check_interval_ms
                self._retention(now)
            for rep in self.replicas.values():
                if rep.log._pending_records and now - rep.log._pending_since >= DISK_PUSH_MS:
                    rep.log.push_to_disk()

    def _forget_memory(self) -> None:
        """The process is gone: roles, purgatories, fetchers and queues with it."""
        now = self.env.now
        for rep in self.replicas.values():
            waiting = rep.become_follower(-1, rep.leader_epoch, rep.partition_epoch, [])
            for _end, delayed, index in waiting:
                delayed.errors[index] = pr.NETWORK_EXCEPTION
            rep.leader = -1
            self.model.consumers_lost_leader(rep, now, reset=not self.host_down)
        self.meta = {}
        for fetcher in self.fetchers.values():
            fetcher.stop()
        self.fetchers = {}
        for fetch in self.parked:
            fetch.fetcher.leader_gone(reset=not self.host_down)
        self.parked = []
        self._purgatory_at = float("inf")
        dropped, self.backlog = self.backlog, []
        self.capacity.reset()
        self.model.producers_lost_broker(self, reset=not self.host_down)
        self._drop_backlog(dropped)

    def _drop_backlog(self, dropped: list[BacklogEntry]) -> None:
        """Requests still unread in the sockets of a process that is gone (it was paused): the
        kernel resets their connections, so their senders hear it now (not when the host is
        down: then they wait for their timeouts), and acks=0 records in them never reach a log.
        Produce requests that expect an answer were refused with the producer's in-flight ones.
        The refusals leave once the node is down (a stop ends after this hook)."""
        for _fn, args, refused in dropped:
            request = args[0] if args and isinstance(args[0], pr.ProduceRequest) else None
            if request is not None and request.acks != "0":
                continue  # refused with the producer's in-flight requests
            if request is not None:
                self._lost_on_arrival(request, NEVER_ARRIVED)
            if refused is not None and not self.host_down:
                self.env.timeout(0).callbacks.append(lambda _e, refused=refused: refused())

    def _losing_power(self) -> bool:
        """Whether the crash being handled is part of a power loss (Node.power_loss records its
        event before calling on_crash; the model also flags it before the fault)."""
        events = self.ctx.events
        last = events[-1] if events else None
        return self.power_loss_coming or (
            last is not None and last.kind == "power_loss" and last.node == self.name
        )

    def take_back_fetches(self) -> None:
        """Responses applied ahead of their arrival go back to the network (before a fault)."""
        for fetcher in list(self.fetchers.values()):
            fetcher.take_back()

    def on_crash(self) -> None:
        self.clean_shutdown = False
        if self._losing_power():
            self.host_down = True
        else:
            for rep in self.replicas.values():
                rep.log.push_to_disk()  # the page cache belongs to the kernel: it survives
        self._forget_memory()

    def on_power_loss(self, lost: dict[str, Any]) -> None:
        self.power_loss_coming = False
        self.host_down = True
        self.clean_shutdown = False
        now = self.env.now
        for rep in self.replicas.values():
            log = rep.log
            log.drop_pending()
            kept = lost.get(self.disk.name, {}).get(log.file.name, (0, log.file.written))[1]
            removed = log.truncate(int(kept))
            if removed:
                rep.power_cut = True
                cause = self._power_loss_cause(rep)
                self.record_truncation(rep, removed, cause, "power_loss", now)

    def _power_loss_cause(self, rep: PartitionReplica) -> str:
        """Why the records a power loss wiped from `rep` are lost (if no other replica holds
        them): a leader with a live successor in the ISR (or ELR) loses, fsynced or not, what
        no follower fetched, since the controller elects the successor and this log would be
        truncated to it on return (leader_failed_before_replication); without one, an unclean
        election would cut them (unclean_election_truncation); otherwise the partition waits for
        this broker, and only the missing fsync loses them (not_fsynced_at_power_loss)."""
        controller = self.model.controller
        state = controller.states.get(rep.partition)
        if state is None or state.leader != self.id:
            return NOT_FSYNCED  # a follower: the leader holds what it lost
        brokers = self.model.brokers

        def alive(b: int) -> bool:
            broker = brokers[b]
            return (
                b != self.id
                and broker.state == UP
                and not broker.host_down
                and not broker.power_loss_coming
                and not controller.fenced.get(b)
            )

        electable = [*state.isr, *(state.elr if controller.elr_enabled else [])]
        if any(alive(b) for b in electable):
            return LEADER_FAILED
        if controller.unclean and any(alive(b) for b in state.replicas):
            return UNCLEAN_TRUNCATION
        return NOT_FSYNCED

    def on_stop(self) -> None:
        # Controlled shutdown: the controller moves leadership away and drops this broker from
        # the ISRs first; the logs are flushed, so a clean restart loses nothing.
        self.model.controller.controlled_shutdown(self)
        for rep in self.replicas.values():
            rep.log.push_to_disk()
            rep.log.file.fsync()
        self.clean_shutdown = True
        self._forget_memory()

    def on_restart(self) -> None:
        self.host_down = False
        self.registered = False
        now = self.env.now
        self.serving_since = now
        for rep in self.replicas.values():
            rep.log.push_to_disk()
            removed = rep.log.recover(rep.log.file.written)
            if removed:  # only if the disk kept less than the log: already accounted
                self.record_truncation(rep, removed, NOT_FSYNCED, "recovery", now)
            rep.is_leader = False
            rep.leader = -1
        self.capacity.reset()
        self.start()

    def on_resume(self) -> None:
        now = self.env.now
        self.serving_since = now
        backlog, self.backlog = self.backlog, []
        for fn, args, _refused in backlog:
            if self.state != UP:
                break
            fn(*args)
        for rep in self.replicas.values():
            if rep.consumer_waiters:
                self.model.settle_consumers(rep, now)

    # --- request gate -----------------------------------------------------------------------------
    def serving(
        self, fn: Callable[..., None], args: tuple[Any, ...], refused: Callable[[], None] | None
    ) -> bool:
        """True if the broker handles a request now; else queue it (paused) or refuse it."""
        state = self.state
        if state == UP:
            return True
        if state == PAUSED:
            self.backlog.append((fn, args, refused))
        elif refused is not None and not self.host_down:
            refused()  # the kernel resets the connection of a dead process
        return False

    # --- metadata requests from clients -----------------------------------------------------------
    def answer_metadata(self, client: Any, cursor: Any = None) -> None:
        """MetadataRequest: the partition leaders as this broker knows them."""
        refused = lambda: client.on_metadata({}, False, cursor)  # noqa: E731
        if not self.serving(self.answer_metadata, (client, cursor), refused):
            return
        leaders = {p: s.leader for p, s in self.meta.items()}
        complete = len(leaders) == len(self.model.partitions)
        self.model.net.send(
            self.name, client.name, 200, lambda: client.on_metadata(leaders, complete, cursor)
        )

    # --- follower fetch (leader side in replication.py) -----------------------------------------
    def receive_follower_fetch(self, fetch: pr.FollowerFetch) -> None:
        if self.state != UP and not self.serving(
            self.receive_follower_fetch, (fetch,), lambda: fetch.fetcher.leader_gone(reset=True)
        ):
            return
        now = self.env.now
        done, waited = self.capacity.handle(now, 0.0)
        if waited > DEFER_MS:
            incarnation = self.incarnation

            def later(_e: Any) -> None:
                if self.incarnation == incarnation and self.state == UP:
                    handle_follower_fetch(self, fetch, self.env.now)

            self.env.timeout(done - now).callbacks.append(later)
            return
        handle_follower_fetch(self, fetch, now)

    def park(self, fetch: pr.FollowerFetch, now: float) -> None:
        fetch.parked_at = now
        fetch.deadline_ms = now + self.cfg.replica_fetch_wait_max_ms
        self.parked.append(fetch)
        if fetch.deadline_ms < self._purgatory_at:
            self._purgatory_at = fetch.deadline_ms
            incarnation = self.incarnation
            self.env.timeout(fetch.deadline_ms - now).callbacks.append(
                lambda _e: self._expire_parked(incarnation)
            )

    def _expire_parked(self, incarnation: int) -> None:
        if incarnation != self.incarnation:
            return
        now = self.env.now
        if self.state != UP:
            self._purgatory_at = float("inf")
            if self.state == PAUSED:
                self.backlog.append((self._expire_parked, (self.incarnation,), None))
            return
        due = [f for f in self.parked if f.deadline_ms <= now + 1e-9]
        if due:
            self.parked = [f for f in self.parked if f.deadline_ms > now + 1e-9]
            for fetch in due:
                handle_follower_fetch(self, fetch, now, expired=True, completing=True)
        self._purgatory_at = float("inf")
        if self.parked:
            first = min(f.deadline_ms for f in self.parked)
            self._purgatory_at = first
            self.env.timeout(max(0.0, first - now)).callbacks.append(
                lambda _e: self._expire_parked(incarnation)
            )

    # --- metadata from the controller -----------------------------------------------------------
    def apply_metadata(
        self, states: list[pr.PartitionState], registration: bool = False, incarnation: int = -1
    ) -> None:
        """Metadata records from the controller. A restarted broker acts on them only once it
        registered again and received the whole image (KRaft brokers stay fenced until they
        caught up with the metadata log)."""
        if not self.serving(self.apply_metadata, (states, registration, incarnation), None):
            return
        if registration:
            if incarnation != self.incarnation:
                return  # the image was meant for an earlier life of this broker
            self.registered = True
        elif not self.registered:
            return
        now = self.env.now
        for state in states:
            old = self.meta.get(state.partition)
            if old is not None and (state.leader_epoch, state.partition_epoch) <= (
                old.leader_epoch,
                old.partition_epoch,
            ):
                continue
            self.meta[state.partition] = state
            rep = self.replicas.get(state.partition)
            if rep is None:
                continue
            if state.leader == self.id:
                if not rep.is_leader or rep.leader_epoch != state.leader_epoch:
                    self._become_leader(rep, state, now)
                else:  # the controller changed the ISR (e.g. fenced a follower)
                    old_isr = rep.isr
                    rep.isr = list(state.isr)
                    rep.partition_epoch = state.partition_epoch
                    rep.proposed_isr = None
                    if old_isr != rep.isr:
                        self.isr_changed(rep, old_isr, now)
                    rep.maybe_advance_hw(now)
            elif (
                rep.is_leader
                or rep.leader != state.leader
                or rep.leader_epoch != state.leader_epoch
            ):
                self._become_follower(rep, state, now)
            else:
                rep.isr = list(state.isr)
                rep.partition_epoch = state.partition_epoch

    def _become_leader(self, rep: PartitionReplica, state: pr.PartitionState, now: float) -> None:
        for fetcher in self.fetchers.values():
            if rep.partition in fetcher.partitions:
                fetcher.take_back()  # a response still on its way must not count as received
            fetcher.remove(rep.partition)
        rep.shared.elections.append(
            Election(state.leader_epoch, self.id, rep.log.leo, state.recovering, rep.power_cut, now)
        )
        rep.become_leader(state.leader_epoch, state.partition_epoch, state.isr, now)
        rep.power_cut = False
        self.ctx.event(
            "became_leader", self.name, partition=rep.partition, epoch=state.leader_epoch
        )

    def _become_follower(self, rep: PartitionReplica, state: pr.PartitionState, now: float) -> None:
        for _end, delayed, index in rep.become_follower(
            state.leader, state.leader_epoch, state.partition_epoch, state.isr
        ):
            delayed.errors[index] = pr.NOT_LEADER_OR_FOLLOWER
            delayed.remaining -= 1
            if delayed.remaining == 0:
                self.answer_produce(delayed.request, delayed.errors, delayed.offsets, now)
        self.model.consumers_lost_leader(rep, now, reset=True)
        if self.parked:
            complete_parked(self, [rep], now)
        for leader, fetcher in self.fetchers.items():
            if leader != state.leader:
                fetcher.remove(rep.partition)
        if state.leader >= 0:
            current = self.fetchers.get(state.leader)
            if current is None:
                current = self.fetchers[state.leader] = ReplicaFetcher(self, state.leader)
            current.add(rep.partition)

    # --- ISR changes (AlterPartition) ------------------------------------------------------------
    def send_alter_partition(self, rep: PartitionReplica, isr: list[int]) -> None:
        self.model.controller.send_alter_partition(self, rep, isr)

    def alter_partition_answered(
        self,
        partition: int,
        leader_epoch: int,
        accepted: bool,
        isr: list[int],
        partition_epoch: int,
    ) -> None:
        if not self.serving(
            self.alter_partition_answered,
            (partition, leader_epoch, accepted, isr, partition_epoch),
            None,
        ):
            return
        rep = self.replicas.get(partition)
        if rep is None or not rep.is_leader or rep.leader_epoch != leader_epoch:
            return
        rep.isr_change_answered(accepted, isr, partition_epoch, self.env.now)

    def isr_changed(self, rep: PartitionReplica, old: list[int], now: float) -> None:
        removed = [r for r in old if r not in rep.isr]
        added = [r for r in rep.isr if r not in old]
        if removed:
            self.ctx.event(
                "isr_shrink", self.name, partition=rep.partition, removed=removed, isr=rep.isr
            )
        if added:
            self.ctx.event(
                "isr_expand", self.name, partition=rep.partition, added=added, isr=rep.isr
            )

    # --- truncation and retention -----------------------------------------------------------------
    def record_truncation(
        self, rep: PartitionReplica, removed: list[Piece], cause: str, reason: str, now: float
    ) -> None:
        """Log a truncation and hand its records to the loss accounting as candidates."""
        count = sum(c for _, _, c, _ in removed)
        if not count:
            return
        ids = rep.log.ids(removed).copy()
        self.model.facts.dropped(ids, cause, now)
        self.ctx.event(
            "truncation",
            self.name,
            partition=rep.partition,
            reason=reason,
            cause=cause,
            from_offset=removed[0][0],
            records=count,
        )

    def truncation_cause(self, rep: PartitionReplica, offset: int) -> str:
        """Why a follower must drop its records from `offset` on: how the leader line that does
        not have them was elected (unclean, after a power loss, or cleanly before replication)."""
        # The leader line diverged at the first election after these records were written that
        # started below them (KIP-101 walks the same epochs).
        written_in = rep.log.epoch_at(offset)
        after = [e for e in rep.shared.elections if e.epoch > written_in]
        if not after:
            return LEADER_FAILED
        chosen = min(after, key=lambda e: (e.start_offset, e.epoch))
        if chosen.unclean:
            return UNCLEAN_TRUNCATION
        if chosen.leader_power_cut:
            return NOT_FSYNCED
        return LEADER_FAILED

    def _retention(self, now: float) -> None:
        topic = self.model.config.topic
        if topic.cleanup_policy == "compact":
            return  # a compacted topic is cleaned by the log cleaner, never deleted (compaction.py)
        for rep in self.replicas.values():
            removed = rep.log.delete_old_segments(now, topic.retention_ms, topic.retention_bytes)
            if not removed:
                continue
            count = sum(c for _, _, c, _ in removed)
            self.ctx.event("segments_deleted", self.name, partition=rep.partition, records=count)
            if rep.is_leader:
                # consumers read from the leader: what it deletes before they read it is gone
                unread = self.model.unread_ids(rep, removed)
                self.model.facts.dropped(unread, RETENTION, now, check_presence=False)
            self.model.consumers_log_start_moved(rep, now)
