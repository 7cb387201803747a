"""The Redis Cluster bus: failure detection, replica election, and the cluster state.

Source: the Redis Cluster specification ("Failure detection", "Replica election and
promotion", "Configuration handling") and cluster.c of Redis 7.x.

- Every node pings the others; a node that has not answered a master for `cluster-node-timeout`
  is PFAIL in that master's view. When a majority of the masters (the nodes serving slots)
  report it, it is FAIL, and every node learns it at once (the FAIL message is broadcast).
- A FAIL master's replicas elect a new master: a replica waits
  `500 ms + random(0, 500 ms) + rank * 1000 ms`, where its rank is the number of replicas with a
  larger replication offset, then asks every master for a vote; masters that can reach it and
  also see its master FAIL grant one vote per failed master per `2 * node-timeout`. With votes
  from a majority of all masters it promotes itself (REPLICAOF NO ONE, a new config epoch);
  otherwise it tries again after `4 * node-timeout` (at least 4 s: the election timeout x 2).
- `cluster-require-full-coverage yes`: while a slot's master is FAIL and not replaced, the
  cluster state is `fail` and every node answers CLUSTERDOWN; `no`: only those slots fail.
- A FAIL flag is cleared when the node answers again: at once for a replica or a master that
  lost its slots, after `2 * node-timeout` for a master that still serves slots and was not
  replaced (CLUSTER_FAIL_UNDO_TIME_MULT). A deposed master that can reach the others learns
  the new configuration and becomes a replica of the new master, dropping what it diverged with.

Modelled at the cluster bus's cron (every 100 ms); gossip delays are not.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from models.redis.cluster_slots import describe_slots

if TYPE_CHECKING:
    from models.redis.cluster_model import ClusterModel
    from models.redis.cluster_shard import Shard
    from models.redis.server import RedisServer

CRON_MS = 100.0  # clusterCron runs 10 times a second
ELECTION_FIXED_MS = 500.0  # replica election delay: 500 ms + random(0, 500) + rank * 1000
ELECTION_RANDOM_MS = 500.0
RANK_MS = 1000.0
FAIL_UNDO_TIME_MULT = 2.0  # CLUSTER_FAIL_UNDO_TIME_MULT


class ClusterBus:
    """Who sees whom, the FAIL flags, the elections, and whether the cluster serves."""

    def __init__(self, cluster: ClusterModel):
        self.cluster = cluster
        self.ctx = cluster.ctx
        self.env = cluster.env
        net = cluster.ctx.network
        assert net is not None, "Redis Cluster needs the network model"
        self.net = net
        spec = cluster.config.cluster
        self.node_timeout_ms = spec.node_timeout_ms
        self.full_coverage = spec.require_full_coverage
        self.rng = cluster.ctx.rng("redis.cluster")
        self.last_pong: dict[tuple[str, str], float] = {}
        self.failed: dict[str, float] = {}  # node -> when it was marked FAIL
        self.voted_at: dict[str, float] = {}  # failed master -> last vote granted for it
        self.electing: dict[int, int] = {}  # shard -> candidates still running for it
        self.down = False
        self.majority_at: dict[str, float] = {}  # node -> last time it reached a majority
        self.isolated: set[str] = set()  # nodes that could not for node-timeout
        self.failovers = 0
        self.clusterdown_ms = 0.0
        self._down_since = 0.0

    def start(self) -> None:
        now = self.env.now
        names = list(self.cluster.servers)
        for a in names:
            for b in names:
                self.last_pong[(a, b)] = now
            self.majority_at[a] = now
        for shard in self.cluster.shards:
            self._leader_event(shard, shard.master.name)
        self.env.process(self._cron())

    def _cron(self) -> Generator[Any, Any, None]:
        while True:
            yield self.env.timeout(CRON_MS)
            self.tick()

    def _talk(self, a: RedisServer, b: RedisServer) -> bool:
        return (
            a.is_running
            and b.is_running
            and not a.is_paused
            and not b.is_paused
            and self.net.reachable(a.name, b.name)
            and self.net.reachable(b.name, a.name)
        )

    def masters(self) -> list[RedisServer]:
        """The nodes serving slots: each shard's current master."""
        return [shard.master for shard in self.cluster.shards]

    def majority(self) -> int:
        return len(self.cluster.shards) // 2 + 1

    # --- one cron tick -------------------------------------------------------------------------
    def tick(self) -> None:
        now = self.env.now
        servers = self.cluster.servers
        masters = self.masters()
        for observer in masters:
            for node in servers.values():
                if node is observer or self._talk(observer, node):
                    self.last_pong[(observer.name, node.name)] = now
        for name, node in servers.items():
            if name in self.failed:
                self._maybe_clear(node, now)
                continue
            reports = sum(
                1
                for m in masters
                if m is not node
                and m.is_running
                and now - self.last_pong[(m.name, name)] > self.node_timeout_ms
            )
            if reports >= self.majority():
                self.failed[name] = now
                self.ctx.event("cluster_node_fail", name, reports=reports)
        self._update_isolation(now, masters)
        for shard in self.cluster.shards:
            self._rejoin_deposed(shard)
            if shard.master.name in self.failed and shard.index not in self.electing:
                self._start_election(shard)
        self._update_state()

    def _update_isolation(self, now: float, masters: list[RedisServer]) -> None:
        """A node that cannot reach a majority of the masters for node-timeout sets its own
        cluster state to fail: a master cut off with some clients stops taking writes."""
        isolated = set()
        for name, node in self.cluster.servers.items():
            reached = sum(1 for m in masters if m is node or self._talk(node, m))
            if reached >= self.majority() or not node.is_running:
                self.majority_at[name] = now
            elif now - self.majority_at[name] > self.node_timeout_ms:
                isolated.add(name)
        for name in sorted(isolated ^ self.isolated):
            state = "fail" if name in isolated else "ok"
            self.ctx.event("cluster_state", name, state=state, reason="minority")
        self.isolated = isolated

    def _maybe_clear(self, node: RedisServer, now: float) -> None:
        if not any(self._talk(m, node) for m in self.masters() if m is not node):
            return
        serving = any(shard.master is node for shard in self.cluster.shards)
        since = self.failed[node.name]
        if serving and now - since <= FAIL_UNDO_TIME_MULT * self.node_timeout_ms:
            return
        del self.failed[node.name]
        self.ctx.event("cluster_node_fail_cleared", node.name)

    def _rejoin_deposed(self, shard: Shard) -> None:
        """A deposed master that hears the new configuration turns into a replica."""
        replication = shard.replication
        if replication is None:
            return
        for name in list(replication.stale):
            deposed = shard.servers[name]
            if deposed.is_running and any(
                self._talk(m, deposed) for m in self.masters() if m is not deposed
            ):
                replication.demote(deposed)

    # --- elections -----------------------------------------------------------------------------
    def _start_election(self, shard: Shard) -> None:
        replication = shard.replication
        if replication is None:
            return
        links = [
            link
            for link in replication.links.values()
            if link.server.is_running
            and link.epoch == replication.epoch
            and link.syncing_until == -np.inf
            and link.server.name not in self.failed
        ]
        if not links or shard.config.replica_priority == 0:
            return
        links.sort(key=lambda link: (-link.offset, link.server.name))
        # each replica waits 500 ms + random(0, 500) ms + rank x 1000 ms, its rank being the
        # number of replicas with a larger offset: the most up-to-date one asks first, and the
        # masters vote once per failed master, so a later candidate finds no votes left
        self.electing[shard.index] = len(links)
        for link in links:
            rank = sum(1 for other in links if other.offset > link.offset)
            delay = ELECTION_FIXED_MS + float(self.rng.uniform(0, ELECTION_RANDOM_MS))
            delay += rank * RANK_MS
            self.env.process(self._election(shard, shard.master, link.server, delay))

    def _election(
        self, shard: Shard, old: RedisServer, replica: RedisServer, delay: float
    ) -> Generator[Any, Any, None]:
        yield self.env.timeout(delay)
        now = self.env.now
        if shard.master is not old or old.name not in self.failed or not replica.is_running:
            self._election_over(shard)
            return
        auth_timeout = max(2.0 * self.node_timeout_ms, 2000.0)
        voters = [
            m
            for m in self.masters()
            if m is not old
            and self._talk(m, replica)
            and now - self.voted_at.get(f"{old.name}@{m.name}", -np.inf) >= auth_timeout
        ]
        for m in voters:
            self.voted_at[f"{old.name}@{m.name}"] = now
        self.ctx.event(
            "cluster_election",
            replica.name,
            shard=shard.name,
            votes=len(voters),
            needed=self.majority(),
        )
        if len(voters) >= self.majority():
            assert shard.replication is not None
            shard.replication.promote(replica)
            self.failovers += 1
            self._leader_event(shard, replica.name)
            self._election_over(shard)
            self._update_state()
            return
        # not elected: try again after the retry time (2 x the election timeout)
        yield self.env.timeout(2.0 * auth_timeout - delay)
        self._election_over(shard)

    def _election_over(self, shard: Shard) -> None:
        left = self.electing.get(shard.index, 1) - 1
        if left > 0:
            self.electing[shard.index] = left
        else:
            self.electing.pop(shard.index, None)

    def _leader_event(self, shard: Shard, name: str) -> None:
        self.ctx.event(
            "leader_elected",
            name,
            partition=shard.name,
            leader=name,
            slots=describe_slots(self.cluster.slot_map.slots_of(shard.index)),
        )

    # --- cluster state -----------------------------------------------------------------------
    def uncovered(self) -> list[Shard]:
        """Shards whose slots are served by a FAIL master (not yet replaced); a master that
        owns no slot (added, not yet resharded) uncovers nothing."""
        owner = self.cluster.slot_map.owner
        return [
            s
            for s in self.cluster.shards
            if s.master.name in self.failed and bool((owner == s.index).any())
        ]

    def _update_state(self) -> None:
        now = self.env.now
        down = self.full_coverage and bool(self.uncovered())
        if down != self.down:
            self.cluster.settle()
            self.down = down
            if down:
                self._down_since = now
                self.ctx.event("cluster_state", "", state="fail", uncovered=len(self.uncovered()))
            else:
                self.clusterdown_ms += now - self._down_since
                self.ctx.event("cluster_state", "", state="ok")
        self.cluster.update_gates(now)

    def refuses(self, server: RedisServer) -> bool:
        """Does this live node answer CLUSTERDOWN (cluster state fail in its own view)? A
        paused or dead node answers nothing: its requests wait in its loop or are refused."""
        if not server.is_running or server.is_paused:
            return False
        return self.down or server.name in self.isolated
