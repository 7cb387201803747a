"""The KRaft controller: broker liveness by heartbeats, fencing, leader elections, ISR changes.

One active controller (a single node; the Raft quorum behind it is not modelled: its metadata log
is fsynced, so a controller crash loses nothing and only pauses decisions). Brokers heartbeat
every `broker.heartbeat.interval.ms`; a broker silent for `broker.session.timeout.ms` is fenced:
removed from every ISR (unless it is the last member) and replaced as leader by the first live
ISR replica. With none alive the partition goes offline (leader -1) and waits for an ISR member
to return, unless `unclean.leader.election.enable` lets an out-of-sync replica lead (its log wins;
records beyond it are truncated everywhere: KIP-704 marks such a leader as recovering). With
`eligible.leader.replicas.enable` (KIP-966) replicas removed from an ISR smaller than
`min.insync.replicas` stay eligible (ELR), the HW only advances with a large enough ISR, and a
broker that shut down uncleanly leaves the ELR. Decisions reach brokers as metadata records over
the network (brokers replay the metadata log), so a partitioned broker keeps its old view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.kafka import protocol as pr
from simulator.node import UP, Node

if TYPE_CHECKING:
    from models.kafka.broker import Broker
    from models.kafka.cluster import KafkaModel
    from models.kafka.partition import PartitionReplica

RECORD_BYTES = 60  # one partition change record


class Controller(Node):
    """The active KRaft controller."""

    def __init__(self, model: KafkaModel):
        super().__init__(model.ctx, "controller", role="controller")
        self.model = model
        cfg = model.config
        self.session_ms = cfg.broker.broker_session_timeout_ms
        self.unclean = cfg.topic.unclean_leader_election_enable
        self.elr_enabled = cfg.broker.eligible_leader_replicas_enable
        self.min_isr = cfg.topic.min_insync_replicas
        self.states = {
            s.partition: pr.PartitionState(s.partition, list(s.replicas)) for s in model.partitions
        }
        self.last_heartbeat: dict[int, float] = {}
        self.fenced: dict[int, bool] = {}
        self.incarnations: dict[int, int] = {}

    # --- lifecycle --------------------------------------------------------------------------------
    def bootstrap(self) -> None:
        """Cluster creation: every broker registered, preferred replicas lead, full ISRs."""
        now = self.env.now
        for broker in self.model.brokers:
            self.last_heartbeat[broker.id] = now
            self.fenced[broker.id] = False
            self.incarnations[broker.id] = broker.incarnation
        states = [s.copy() for s in self.states.values()]
        for broker in self.model.brokers:
            broker.apply_metadata([s.copy() for s in states])
        self.spawn(self._sessions())

    def on_restart(self) -> None:
        # A new active controller gives every broker a fresh session before fencing anyone.
        now = self.env.now
        for b in self.last_heartbeat:
            self.last_heartbeat[b] = now
        self.spawn(self._sessions())

    def _sessions(self) -> Any:
        while True:
            now = self.env.now
            alive = [b for b, fenced in self.fenced.items() if not fenced]
            due = min(
                (self.last_heartbeat[b] + self.session_ms for b in alive),
                default=now + self.session_ms,
            )
            if due > now:
                yield from self.sleep(due - now)
                continue
            for b in alive:
                if self.last_heartbeat[b] + self.session_ms <= self.env.now:
                    self.fence(b, "session_timeout")

    # --- heartbeats -------------------------------------------------------------------------------
    def send_heartbeat(self, broker: Broker) -> None:
        incarnation = broker.incarnation
        clean = broker.clean_shutdown
        self.model.net.send(
            broker.name,
            self.name,
            64,
            lambda: self.on_heartbeat(broker, incarnation, clean),
            timeout_ms=self.session_ms,
        )

    def on_heartbeat(self, broker: Broker, incarnation: int, clean_shutdown: bool) -> None:
        if self.state != UP:
            return
        b = broker.id
        restarted = self.incarnations.get(b) != incarnation
        if restarted and not self.fenced.get(b):
            # DuplicateBrokerRegistrationException: the old incarnation's session is still
            # valid, so the restarted broker registers only after it expired (and was fenced)
            return
        self.last_heartbeat[b] = self.env.now
        self.incarnations[b] = incarnation
        if restarted:
            # re-registration: the broker lost its memory and needs the whole metadata image
            if self.elr_enabled and not clean_shutdown:
                self._forget_unclean(b)
            self._send(broker, list(self.states.values()), incarnation)
        if self.fenced.get(b):
            self.fenced[b] = False
            self.ctx.event("broker_unfenced", broker.name)
            changed = [s for s in self.states.values() if s.leader < 0 and self._eligible(s, b)]
            for state in changed:
                self._elect(state, "broker_returned")
            self._publish(changed)

    def _eligible(self, state: pr.PartitionState, b: int) -> bool:
        return b in state.replicas and (b in state.isr or b in state.elr or self.unclean)

    def fence(self, b: int, reason: str) -> None:
        if self.fenced.get(b):
            return
        self.fenced[b] = True
        name = f"broker{b}"
        self.ctx.event("failure_detected", name, reason=reason)
        self.ctx.event("broker_fenced", name, reason=reason)
        changed = []
        for state in self.states.values():
            touched = False
            if b in state.isr and len(state.isr) > 1:
                self._shrink(state, [r for r in state.isr if r != b])
                touched = True
            if state.leader == b:
                self._elect(state, reason)
                touched = True
            if touched:
                changed.append(state)
        self._publish(changed)

    def controlled_shutdown(self, broker: Broker) -> None:
        """A broker stopping gracefully: move its leaderships and drop it from the ISRs first."""
        if self.state != UP:
            return
        self.fence(broker.id, "controlled_shutdown")

    def _forget_unclean(self, b: int) -> None:
        changed = []
        for state in self.states.values():
            if b in state.elr:
                state.elr.remove(b)
                state.partition_epoch += 1
                changed.append(state)
        self._publish(changed)

    # --- elections and ISR ------------------------------------------------------------------------
    def _shrink(self, state: pr.PartitionState, isr: list[int]) -> None:
        removed = [r for r in state.isr if r not in isr]
        state.isr = isr
        if self.elr_enabled:
            if len(isr) < self.min_isr:
                state.elr = [*state.elr, *(r for r in removed if r not in state.elr)]
            state.elr = [r for r in state.elr if r not in isr]
        state.partition_epoch += 1

    def _elect(self, state: pr.PartitionState, reason: str) -> None:
        alive = [r for r in state.replicas if not self.fenced.get(r)]
        in_sync = [r for r in state.isr if r in alive]
        eligible = [r for r in state.elr if r in alive] if self.elr_enabled else []
        unclean = False
        if in_sync:
            leader = sorted(in_sync, key=state.replicas.index)[0]
        elif eligible:
            leader = eligible[0]
            state.isr = [leader]
            state.elr = [r for r in state.elr if r != leader]
        elif self.unclean and alive:
            leader = alive[0]
            unclean = True
            state.isr = [leader]
        else:
            leader = -1
        old = state.leader
        state.leader = leader
        state.leader_epoch += 1
        state.partition_epoch += 1
        state.recovering = unclean
        p = state.partition
        if leader < 0:
            self.ctx.event(
                "partition_offline", self.name, partition=p, last_leader=old, isr=list(state.isr)
            )
        else:
            self.ctx.event(
                "leader_elected",
                self.name,
                partition=p,
                leader=leader,
                epoch=state.leader_epoch,
                unclean=unclean,
                reason=reason,
            )
            if unclean:
                self.ctx.event("unclean_election", self.name, partition=p, leader=leader)

    def send_alter_partition(self, broker: Broker, rep: PartitionReplica, isr: list[int]) -> None:
        p, epoch, partition_epoch = rep.partition, rep.leader_epoch, rep.partition_epoch
        rep.proposed_at = broker.env.now
        self.model.net.send(
            broker.name,
            self.name,
            RECORD_BYTES,
            lambda: self.on_alter_partition(broker, p, epoch, partition_epoch, isr),
            timeout_ms=broker.cfg.replica_socket_timeout_ms,
        )

    def on_alter_partition(
        self, broker: Broker, p: int, leader_epoch: int, partition_epoch: int, isr: list[int]
    ) -> None:
        if self.state != UP:
            return
        state = self.states[p]
        accepted = (
            state.leader == broker.id
            and state.leader_epoch == leader_epoch
            and state.partition_epoch == partition_epoch
            and all(not self.fenced.get(r) or r in state.isr for r in isr)
        )
        if accepted:
            if len(isr) < len(state.isr):
                self._shrink(state, list(isr))
            else:
                state.isr = list(isr)
                state.elr = [r for r in state.elr if r not in isr]
                state.partition_epoch += 1
        answer = (list(state.isr), state.partition_epoch)
        self.model.net.send(
            self.name,
            broker.name,
            RECORD_BYTES,
            lambda: broker.alter_partition_answered(p, leader_epoch, accepted, *answer),
        )
        if accepted:
            self._publish([state])

    # --- publishing -------------------------------------------------------------------------------
    def _publish(self, states: list[pr.PartitionState]) -> None:
        if not states:
            return
        for broker in self.model.brokers:
            self._send(broker, states)

    def _send(
        self, broker: Broker, states: list[pr.PartitionState], registration: int | None = None
    ) -> None:
        """Metadata records to one broker; `registration`: the whole image for the broker
        incarnation that just registered."""
        copies = [s.copy() for s in states]
        full = registration is not None
        incarnation = -1 if registration is None else registration
        self.model.net.send(
            self.name,
            broker.name,
            RECORD_BYTES * len(copies),
            lambda: broker.apply_metadata(copies, full, incarnation),
        )

    # --- views for gauges and roles --------------------------------------------------------------
    def leader_of(self, partition: int) -> int:
        return self.states[partition].leader

    def offline_partitions(self) -> int:
        return sum(1 for s in self.states.values() if s.leader < 0)

    def under_replicated(self) -> int:
        return sum(1 for s in self.states.values() if len(s.isr) < len(s.replicas))
