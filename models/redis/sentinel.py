"""Redis Sentinel ("High availability with Redis Sentinel" docs; sentinel.conf 7.x).

Each sentinel PINGs the master once a second (every down-after-milliseconds if shorter). A PING
left unanswered for `down-after-milliseconds` (counted from when it was sent: sentinel.c
`sentinelCheckSubjectivelyDown`, `act_ping_time`) makes the master subjectively down (SDOWN)
for that sentinel; a `LOADING` reply is valid, so a
master that restarts and loads is not failed over. When `quorum` sentinels it can talk to agree,
the master is objectively down (ODOWN); a sentinel that gathers the votes of a *majority* of all
sentinels becomes leader (after a random delay of up to a second, as Sentinel desynchronizes
its candidates), picks the replica with the best `replica-priority`, then the largest
replication offset, sends it `REPLICAOF NO ONE`, and publishes the new configuration (a higher
config epoch) once INFO shows the promotion. Sentinels that can talk to each other adopt the
highest epoch; a sentinel that reaches a deposed master turns it into a replica of the new one.

Clients ask a reachable sentinel for the master every `client.sentinel_lookup_ms` and switch
when the answer changes: clients cut off with a minority of sentinels keep writing to the old
master (split brain).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.node import Node

if TYPE_CHECKING:
    from models.redis.model import RedisModel

PING_PERIOD_MS = 1000.0  # SENTINEL_PING_PERIOD (shorter when down-after-milliseconds is)
ELECTION_DELAY_MAX_MS = 1000.0  # random desync before a sentinel asks for votes
PROMOTION_SEEN_MS = 1000.0  # INFO of the promoted replica, refreshed every second in failover


class Sentinel(Node):
    """One sentinel process: its view of the master and its config epoch."""

    def __init__(self, group: Sentinels, name: str):
        super().__init__(group.ctx, name, role="sentinel")
        self.group = group
        self.master_name = "redis"
        self.epoch = 0
        self.ping_sent_ms: float | None = None  # the oldest PING still unanswered (act_ping_time)
        self.sdown = False
        self.odown = False

    def start(self) -> None:
        self.spawn(self._run())

    def _run(self) -> Generator[Any, Any, None]:
        yield self.env.timeout(float(self.group.rng.uniform(0, PING_PERIOD_MS)))
        group = self.group
        while True:
            group.tick(self)
            wait = group.ping_period_ms
            if self.ping_sent_ms is not None and not self.sdown:
                # sentinelTimer checks SDOWN 10 times a second: not later than it is due
                due = self.ping_sent_ms + group.down_after_ms - self.env.now
                if due > 0:
                    wait = min(wait, due)
            yield self.env.timeout(wait)

    def on_restart(self) -> None:
        self.ping_sent_ms = None
        self.sdown = self.odown = False
        self.start()


class Sentinels:
    """The sentinel nodes, their failover procedure, and the clients' master lookup."""

    def __init__(self, model: RedisModel):
        self.model = model
        self.ctx = model.ctx
        self.env = model.env
        net = model.ctx.network
        assert net is not None, "replication and Sentinel need the network model"
        self.net = net
        spec = model.config.sentinel
        self.quorum = spec.quorum
        self.down_after_ms = spec.down_after_milliseconds
        self.ping_period_ms = min(PING_PERIOD_MS, self.down_after_ms)
        self.failover_timeout_ms = spec.failover_timeout
        self.rng = model.ctx.rng("redis.sentinel")
        self.nodes = [Sentinel(self, name) for name in model.config.sentinel_names()]
        self.majority = len(self.nodes) // 2 + 1
        self.config_epoch = 0
        self.failover_until = -np.inf

    def start(self) -> None:
        for sentinel in self.nodes:
            sentinel.start()
        self.env.process(self._client_lookup())  # outlives a crash of the clients host

    def _talk(self, a: str, b: str) -> bool:
        return self.net.reachable(a, b) and self.net.reachable(b, a)

    def _peers(self, me: Sentinel) -> list[Sentinel]:
        return [s for s in self.nodes if s.is_running and (s is me or self._talk(me.name, s.name))]

    def tick(self, me: Sentinel) -> None:
        """One PING period of sentinel `me`."""
        now = self.env.now
        replication = self.model.replication
        assert replication is not None
        peers = self._peers(me)
        newest = max(peers, key=lambda s: s.epoch)
        if newest.epoch > me.epoch:  # hello messages: adopt the newer configuration
            me.epoch, me.master_name = newest.epoch, newest.master_name
            me.ping_sent_ms, me.sdown, me.odown = None, False, False
        servers = self.model.servers
        if me.master_name == replication.master.name:
            for name in list(replication.stale):
                deposed = servers[name]
                if deposed.is_running and self._talk(me.name, name):
                    replication.demote(deposed)
        master = servers[me.master_name]
        if master.is_running and not master.is_paused and self._talk(me.name, master.name):
            me.ping_sent_ms = None
            me.sdown = me.odown = False
            return
        if me.ping_sent_ms is None:
            me.ping_sent_ms = now  # this PING goes unanswered
        if not me.sdown and now - me.ping_sent_ms >= self.down_after_ms - 1e-9:
            me.sdown = True
            self.ctx.event("sdown", me.name, master=master.name)
        if not me.sdown:
            return
        agree = [s for s in peers if s.sdown and s.master_name == me.master_name]
        if len(agree) < self.quorum:
            return
        if not me.odown:
            me.odown = True
            self.ctx.event("odown", me.name, master=master.name, agreeing=len(agree))
        if now < self.failover_until or len(peers) < self.majority:
            return  # a failover is running, or this sentinel cannot be elected
        self.failover_until = now + self.failover_timeout_ms
        delay = float(self.rng.uniform(0, ELECTION_DELAY_MAX_MS))
        me.spawn(self._failover(me, me.epoch, delay))

    def _failover(self, leader: Sentinel, epoch: int, delay: float) -> Generator[Any, Any, None]:
        yield self.env.timeout(delay)
        replication = self.model.replication
        assert replication is not None
        if leader.epoch != epoch or len(self._peers(leader)) < self.majority:
            self.failover_until = -np.inf
            return
        master = self.model.servers[leader.master_name]
        if master.is_running and not master.is_paused and self._talk(leader.name, master.name):
            # the master answers again before a replica was selected: no failover
            self.ctx.event("failover_aborted", leader.name, reason="master is back")
            self.failover_until = -np.inf
            return
        candidates = replication.candidates(leader.name)
        if not candidates:
            self.ctx.event("failover_aborted", leader.name, reason="no good replica")
            return  # retried after failover-timeout
        chosen = candidates[0]
        self.config_epoch = max(self.config_epoch, epoch) + 1
        new_epoch = self.config_epoch
        replication.promote(chosen)
        yield self.env.timeout(PROMOTION_SEEN_MS)
        if leader.epoch < new_epoch:
            leader.epoch, leader.master_name = new_epoch, chosen.name
            leader.ping_sent_ms, leader.sdown, leader.odown = None, False, False
        self.failover_until = -np.inf

    def _client_lookup(self) -> Generator[Any, Any, None]:
        """SENTINEL get-master-addr-by-name, asked of the sentinels the clients can reach."""
        period = self.model.config.client.sentinel_lookup_ms
        while True:
            yield self.env.timeout(period)
            if not self.model.clients.node.is_up:
                continue
            answering = [s for s in self.nodes if s.is_running and self._talk("clients", s.name)]
            if not answering:
                continue
            name = max(answering, key=lambda s: s.epoch).master_name
            if name != self.model.server.name:
                self.model.switch_master(name)
