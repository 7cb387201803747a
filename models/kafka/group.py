"""The consumer group: its coordinator, membership, rebalances, assignors and committed offsets.

Kafka's classic group protocol, simplified to what changes outcomes:

- **Coordinator.** The group's coordinator is the leader of partition
  `crc32(group.id) % offsets.topic.num.partitions` of `__consumer_offsets`; that partition's
  replicas are brokers `(q + i) % brokers`. Simplified: the coordinator is the first of those
  replicas that is up and registered with the controller (a failover is instant, no election
  of the offsets partition is simulated), and a commit is durable
  as soon as one replica is up (offsets are replicated with acks=all, so they survive any
  broker failure that leaves a replica). With no replica up, commits fail (are dropped) and
  rebalances wait.
- **Membership.** Every consumer of the run is a member. The run's consumers joined before the
  simulated clock starts (the initial join and its `group.initial.rebalance.delay.ms` are over at
  t=0, with nothing committed and an empty log); the delay applies again when an empty group gets
  a member back. A crashed or paused member stops heartbeating and is removed
  `session.timeout.ms` later. A restarted consumer is a new member: its JoinGroup starts a
  rebalance at once, and the join round waits for every known member, its own old membership
  included, until that session expires (eager members have revoked everything meanwhile). A member
  whose processing of one poll (what it fetched, at most max.poll.records) exceeds
  `max.poll.interval.ms` leaves the group (checked every `heartbeat.interval.ms`, as the
  heartbeat thread does) and rejoins at its next poll. A graceful stop leaves at once.
- **Rebalances.** Members rejoin at their next poll, i.e. when the poll they are processing ends.
  Eager (range, roundrobin, sticky): every member revokes all its partitions at that moment,
  and the new assignment starts after the join and sync round trips. Cooperative
  (cooperative-sticky, KIP-429): members keep their partitions; partitions of departed members
  are assigned after the first round, partitions that move between live members after a second
  one. Every rebalance emits a `rebalance` event with the assignment and the partition-ms
  without an owner it cost.
- **Committed offsets.** Auto-commit (`enable.auto.commit`) commits every
  `auto.commit.interval.ms` (one timer for the whole group, from the start of the run, rather
  than one per client checked at its poll) the offsets of the previous poll, and on revocation; manual commits
  commit each poll after processing it, or before. A new owner resumes at the committed offset:
  records between it and what the previous owner processed are delivered again (duplicates with
  a cause), or, committed before processing and never processed, skipped. With transactions
  (`exactly_once`) the offsets are committed by each poll's transaction (transactions.py), and a
  new owner fences the partition's transactional.id before it starts.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from models.kafka.facts import (
    COMMITTED_BEFORE_PROCESSING,
    DUP_CONSUMER_CRASH,
    DUP_REBALANCE,
    OFFSET_RESET_LATEST,
    undelivered,
)
from models.kafka.group_assignors import assign
from models.kafka.placement import replicas_of
from simulator.node import UP

if TYPE_CHECKING:
    from models.kafka.cluster import KafkaModel
    from models.kafka.config import KafkaConfig
    from models.kafka.consumer import Consumer

JOIN_BYTES = 300
COOPERATIVE = "cooperative-sticky"
__all__ = ["Group", "assign"]


def offsets_replicas(config: KafkaConfig) -> list[int]:
    """The brokers holding the group's __consumer_offsets partition (crc32(group.id) % its
    partitions, placed as topic partitions are), the first its coordinator."""
    brokers = config.brokers
    q = zlib.crc32(config.consumer.group_id.encode()) % config.broker.offsets_topic_num_partitions
    rf = min(config.broker.offsets_topic_replication_factor, brokers)
    return replicas_of(q, brokers, rf)


class Group:
    """One consumer group (every consumer of the run) and its coordinator."""

    def __init__(self, model: KafkaModel):
        self.model = model
        self.env = model.env
        self.cfg = model.config.consumer
        self.offsets_replicas = offsets_replicas(model.config)
        self.partitions = list(range(model.config.topic.partitions))
        # partition -> (offset, leader epoch of the record before it): OffsetCommit carries the
        # epoch so the next owner can validate the offset against the log (KIP-320)
        self.committed: dict[int, tuple[int, int]] = {}
        self.processed: dict[int, int] = {}  # highest position any owner processed
        self.owner: dict[int, str | None] = dict.fromkeys(self.partitions)
        self.unowned_since: dict[int, float] = dict.fromkeys(self.partitions, self.env.now)
        self.departed: dict[int, str] = {}  # partition -> redelivery cause for its next owner
        self.left: set[str] = set()  # members out of the group (max.poll.interval.ms, stop)
        self.generation = 0
        self.rebalancing = False
        self.again = False
        # member -> when its session expires: a crashed or paused member stays in the group
        # (and every join round waits for it) until then
        self.session_expiry: dict[str, float] = {}
        self.round_waits_for: set[str] = set()  # expiries the running round already waits for
        self.unowned_partition_ms = 0.0
        self.rebalances = 0
        self.commits_failed = 0

    # --- helpers --------------------------------------------------------------------------------
    def consumers(self) -> dict[str, Consumer]:
        return {c.name: c for c in self.model.consumers}

    def coordinator(self) -> Any:
        """The broker coordinating the group, or None when no __consumer_offsets replica is up."""
        fenced = self.model.controller.fenced
        for b in self.offsets_replicas:
            broker = self.model.brokers[b]
            # a restarted broker loads the offsets partition only once registered and unfenced
            if broker.state == UP and broker.registered and not fenced.get(b, False):
                return broker
        return None

    def live_members(self) -> list[Consumer]:
        return [c for c in self.model.consumers if c.state == UP and c.name not in self.left]

    def commit(self, consumer: Consumer, p: int, offset: int, epoch: int) -> None:
        """An OffsetCommit: stored if the coordinator is up and `consumer` still owns `p`."""
        if self.owner.get(p) != consumer.name or consumer.member_generation != self.generation:
            return  # CommitFailedException: the partition was reassigned
        if self.coordinator() is None:
            self.commits_failed += 1
            return
        self.committed[p] = (offset, epoch)

    def note_processed(self, p: int, position: int) -> None:
        if position > self.processed.get(p, 0):
            self.processed[p] = position

    # --- start ----------------------------------------------------------------------------------
    def start(self) -> None:
        """The initial assignment at t=0 (the members joined before the clock started)."""
        members = self.live_members()
        target = assign(
            self.cfg.partition_assignment_strategy,
            self.partitions,
            [c.name for c in members],
            self.owner,
        )
        self._assign(target, dict.fromkeys(self.partitions, True), "initial")
        self.env.process(self._heartbeats())
        if self.cfg.enable_auto_commit:
            self.env.process(self._auto_commits())

    def _auto_commits(self) -> Any:
        while True:
            yield self.env.timeout(self.cfg.auto_commit_interval_ms)
            self.model.settle_all()
            for consumer in self.live_members():
                consumer.commit_all()

    def _heartbeats(self) -> Any:
        """The heartbeat thread's max.poll.interval.ms check, and rejoining after it."""
        cfg = self.cfg
        while True:
            yield self.env.timeout(cfg.heartbeat_interval_ms)
            for consumer in self.model.consumers:
                if consumer.state != UP:
                    continue
                if consumer.name in self.left:
                    # its next poll() rejoins (the poll it was processing was abandoned)
                    if consumer.joinable:
                        self.left.discard(consumer.name)
                        self.request(f"{consumer.name} rejoined")
                    continue
                # what max.poll.interval.ms bounds is the poll the member processes: at most
                # max.poll.records (if even that is fast enough, nothing to look at), fewer
                # when it keeps up
                if not consumer.cursors or consumer.poll_ms() <= cfg.max_poll_interval_ms:
                    continue
                self.model.settle_all()
                if consumer.longest_poll_ms() > cfg.max_poll_interval_ms:
                    self.model.ctx.event(
                        "member_left", consumer.name, reason="max_poll_interval_exceeded"
                    )
                    consumer.revoke_all(commit=False)  # its commit would fail anyway
                    for p, name in self.owner.items():
                        if name == consumer.name:
                            self.owner[p] = None
                            self.unowned_since[p] = self.env.now
                            self.departed[p] = DUP_REBALANCE
                    self.left.add(consumer.name)
                    self.request("max_poll_interval_exceeded")

    # --- membership changes ---------------------------------------------------------------------
    def member_down(self, consumer: Consumer, crashed: bool) -> None:
        """Heartbeats stopped: the member is removed session.timeout.ms later if still down."""
        for p, name in self.owner.items():
            if name == consumer.name:
                self.departed[p] = DUP_CONSUMER_CRASH if crashed else DUP_REBALANCE
                self.unowned_since[p] = self.env.now  # nobody consumes it from now on
        incarnation = consumer.incarnation
        consumer.session_pending = True
        expiry = self.env.now + self.cfg.session_timeout_ms
        self.session_expiry[consumer.name] = expiry

        def expire(_e: Any) -> None:
            if self.session_expiry.get(consumer.name) != expiry:
                return  # its heartbeats resumed (a thawed member), or a later session replaced it
            consumer.session_pending = False
            del self.session_expiry[consumer.name]
            if consumer.state != UP or consumer.incarnation != incarnation:
                consumer.expired = consumer.state != UP
                self.model.ctx.event("member_expired", consumer.name)
                if consumer.name in self.round_waits_for:
                    return  # the running join round was waiting for exactly this
                self.request(f"{consumer.name} session timeout")

        self.env.timeout(self.cfg.session_timeout_ms).callbacks.append(expire)

    def member_restarted(self, consumer: Consumer) -> None:
        """A restarted consumer is a new member: its JoinGroup starts a rebalance at once, and
        the join round waits for its old membership until that session expires."""
        self.left.discard(consumer.name)
        if self.model.transactions is not None:
            self.model.transactions.init_producer(consumer)  # initTransactions at start-up
        self.request(f"{consumer.name} joined")

    def member_resumed(self, consumer: Consumer) -> None:
        """A paused member came back: removed meanwhile, it finishes the poll it held, drops
        its partitions and rejoins."""
        # its heartbeats resume: the session that stopped at the pause is alive again
        self.session_expiry.pop(consumer.name, None)
        consumer.session_pending = False
        # partitions handed to others while it was frozen (its session expired, or a rebalance
        # went on without it) are no longer its own: the application first processes the rest
        # of the poll it held, then its next poll() drops them without committing
        stale = [p for p in consumer.cursors if self.owner.get(p) != consumer.name]
        for p in consumer.cursors:
            if p not in stale:
                consumer.cursors[p].in_hand = None  # fetched again from its position
        for p in stale:
            consumer.finish_lost_poll(p)
        # a rebalance that went on without it (even one that took nothing from it: it held no
        # partition, or the round left it out) made it a stale member: its next heartbeat is
        # answered with the new generation and it rejoins
        outdated = consumer.member_generation != self.generation
        if consumer.expired or stale or outdated:
            consumer.expired = False
            self.request(f"{consumer.name} rejoined")

    def member_leaving(self, consumer: Consumer) -> None:
        """close(): commit what was processed, LeaveGroup, immediate rebalance."""
        # the member still owns its partitions while it commits: close() commits the position
        # (auto-commit: what poll() returned, processed by then; a careful loop does the same),
        # so the next owner neither redoes this member's work nor starts past a poll committed
        # before processing and never finished. A transactional loop aborts what is in progress.
        consumer.revoke_all(commit=not self.cfg.exactly_once)
        for p, name in self.owner.items():
            if name == consumer.name:
                self.owner[p] = None
                self.unowned_since[p] = self.env.now
        self.left.add(consumer.name)
        self.request(f"{consumer.name} left")

    # --- rebalances -----------------------------------------------------------------------------
    def request(self, reason: str) -> None:
        if self.rebalancing:
            self.again = True
            return
        self.rebalancing = True
        self.env.timeout(0).callbacks.append(lambda _e: self._begin(reason))

    def _begin(self, reason: str) -> None:
        model = self.model
        model.settle_all()
        now = self.env.now
        coordinator = self.coordinator()
        if coordinator is None:  # no coordinator: try again after a heartbeat interval
            self.env.timeout(self.cfg.heartbeat_interval_ms).callbacks.append(
                lambda _e: self._begin(reason)
            )
            return
        members = self.live_members()
        names = {c.name for c in members}
        # partitions whose owner is gone have no owner from now on (if not already)
        by_name = {c.name: c for c in members}
        for p, name in self.owner.items():
            # an owner that went down (or came back as a new member, without its positions)
            # stopped consuming when it went down (member_down)
            if name is not None and (name not in names or p not in by_name[name].cursors):
                self.owner[p] = None
        strategy = self.cfg.partition_assignment_strategy
        cooperative = strategy == COOPERATIVE
        target = assign(strategy, self.partitions, sorted(names), self.owner)
        rtt = 0.0
        for c in members:
            rtt = max(rtt, 2 * model.net.delay(c.name, coordinator.name, JOIN_BYTES))
        # every member rejoins at its next poll, once the poll it is processing is done
        rejoin = {c.name: now + c.current_poll_left_ms() for c in members}
        first_round = (max(rejoin.values()) if rejoin else now) + 2 * rtt
        # the join phase ends when every known member has rejoined: a member that crashed or
        # froze is still known until its session expires, so the round waits for it (with the
        # eager protocol every member has revoked its partitions meanwhile; static membership,
        # KIP-345, exists to avoid this wait on a restart)
        self.round_waits_for = set(self.session_expiry)
        if self.session_expiry:
            first_round = max(first_round, max(self.session_expiry.values()) + 2 * rtt)
        if members and all(self.owner[p] is None for p in self.partitions):
            # an empty group getting members again waits for more of them to join
            first_round += model.config.broker.group_initial_rebalance_delay_ms
        moving = [
            p
            for p in self.partitions
            if self.owner[p] is not None and (not cooperative or target.get(p) != self.owner[p])
        ]
        for p in moving:
            owner = by_name[self.owner[p] or ""]
            self.env.timeout(rejoin[owner.name] - now).callbacks.append(self._revoker(owner, p))
        done = first_round + (2 * rtt if cooperative and moving else 0.0)
        self.env.timeout(done - now).callbacks.append(
            lambda _e: self._complete(target, reason, cooperative)
        )

    def _revoker(self, consumer: Consumer, p: int) -> Any:
        return lambda _e: self._revoke(consumer, p)

    def _revoke(self, consumer: Consumer, p: int) -> None:
        if self.owner.get(p) != consumer.name:
            return
        self.model.settle_all()
        consumer.revoke(p, commit=True)
        self.owner[p] = None
        self.unowned_since[p] = self.env.now
        self.departed.setdefault(p, DUP_REBALANCE)

    def _complete(self, target: dict[int, str], reason: str, cooperative: bool) -> None:
        self.model.settle_all()
        live = {c.name for c in self.live_members()}
        target = {p: name for p, name in target.items() if name in live}
        fresh = {p: self.owner[p] is None for p in self.partitions}
        self._assign(target, fresh, reason)
        self.rebalancing = False
        self.round_waits_for = set()  # a finished round waits for nobody
        again, self.again = self.again, False
        unowned = bool(live) and any(self.owner[p] is None for p in self.partitions)
        if again or unowned:
            self.request("members changed during the rebalance")

    def _assign(self, target: dict[int, str], fresh: dict[int, bool], reason: str) -> None:
        """Hand out the partitions that have no owner; record the rebalance."""
        now = self.env.now
        consumers = self.consumers()
        self.generation += 1
        cost = 0.0
        handed_out: list[int] = []
        for p in self.partitions:
            name = target.get(p)
            if not fresh[p] or name is None:
                continue
            cost += now - self.unowned_since[p]
            handed_out.append(p)
            self.owner[p] = name
            self._hand_over(p, consumers[name])
        for c in self.model.consumers:
            if c.name in target.values() or (c.state == UP and c.name not in self.left):
                c.member_generation = self.generation
        self.departed = {p: c for p, c in self.departed.items() if self.owner[p] is None}
        self.unowned_partition_ms += cost
        self.rebalances += 1
        coordinator = self.coordinator()
        cooperative = self.cfg.partition_assignment_strategy == COOPERATIVE
        self.model.ctx.event(
            "rebalance",
            coordinator.name if coordinator is not None else "",
            generation=self.generation,
            reason=reason,
            protocol="cooperative" if cooperative else "eager",
            # member -> partitions ([] = an idle member: more consumers than partitions)
            assignment={
                c.name: sorted(p for p, n in self.owner.items() if n == c.name)
                for c in self.model.consumers
                if c.name in self.owner.values() or c.member_generation == self.generation
            },
            # partitions that had stopped and now start again (eager: all of them), and the
            # partition-ms they spent without an owner (the consumption pause)
            paused_partitions=handed_out,
            unowned_partition_ms=cost,
        )

    def _hand_over(self, p: int, consumer: Consumer) -> None:
        """The new owner starts at the committed offset. With transactions it first initialises
        the partition's transactional.id (fencing and aborting what the old owner left open),
        and waits while a commit is in flight: its offsets are pending (KIP-447)."""
        txns = self.model.transactions
        if txns is not None:
            if txns.committing(p):
                txns.when_decided(p, lambda: self._take_when_stable(p, consumer))
                return
            txns.fence(p, consumer)
        start, epoch, cause = self._start_offset(p, self.env.now)
        consumer.take(p, start, epoch, self.processed.get(p, 0), cause)

    def _take_when_stable(self, p: int, consumer: Consumer) -> None:
        if (
            self.owner.get(p) == consumer.name
            and consumer.state == UP
            and p not in consumer.cursors
        ):
            self._hand_over(p, consumer)

    def commit_transactional(self, p: int, offset: int, epoch: int) -> None:
        """The COMMIT marker reached __consumer_offsets: the transaction's offsets count now
        (the transaction coordinator checked the producer's epoch, not the member's)."""
        self.committed[p] = (offset, epoch)

    def _start_offset(self, p: int, now: float) -> tuple[int, int, str]:
        """Where the new owner of `p` starts, and the cause of any redelivery it makes."""
        cause = self.departed.get(p, DUP_REBALANCE)
        stored = self.committed.get(p)
        processed = self.processed.get(p, 0)
        model = self.model
        leader = model.controller.leader_of(p)
        log = model.brokers[leader].replicas[p].log if leader >= 0 else None
        if stored is None:
            # auto.offset.reset: no committed offset for this partition
            if log is None:
                return processed, -1, cause
            if self.cfg.auto_offset_reset == "earliest":
                return log.log_start, -1, cause
            # `latest` is what ListOffsets(LATEST) answers a consumer: the high watermark, not
            # the log end (Partition.fetchOffsetForTimestamp, read_uncommitted); records above
            # it are not committed yet, and the consumer reads them once they are
            latest = log.hw
            # jumped over: what nobody processed; with transactions also what was processed
            # under a transaction that never committed (no offsets were committed, so none did:
            # its output was aborted). A record delivered keeps that fate whatever the skip.
            # Below what an owner processed the log may hold other records than it read (lost
            # at a power loss or an unclean election, and written again): the undelivered ones
            # there are jumped over too
            if latest > log.log_start and self.rebalances > 0:
                history = model.ctx.history
                if self.cfg.exactly_once:
                    gone = np.asarray(log.ids(log.pieces(log.log_start, latest))).astype(np.int64)
                else:
                    gone = undelivered(history, log, log.log_start, latest)
                history.skip(gone, OFFSET_RESET_LATEST, now)
            if self.rebalances > 0:
                model.ctx.event("offset_reset", "", partition=p, offset=latest, reason="no_commit")
            return latest, -1, cause
        committed, epoch = stored
        if committed > processed and log is not None and cause == DUP_CONSUMER_CRASH:
            # committed before processing, then crashed: never processed, never will be
            lo, hi = max(processed, log.log_start), min(committed, log.leo)
            if hi > lo:
                gone = np.asarray(log.ids(log.pieces(lo, hi)))
                model.ctx.history.skip(gone.astype(np.int64), COMMITTED_BEFORE_PROCESSING, now)
        return committed, epoch, cause

    # --- metrics --------------------------------------------------------------------------------
    def resume_offset(self, p: int) -> int:
        stored = self.committed.get(p)
        return stored[0] if stored is not None else self.processed.get(p, 0)
