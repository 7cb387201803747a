"""Cluster-aware clients: route each command by hash slot, follow MOVED, see CLUSTERDOWN.

A cluster client library (Jedis `JedisCluster`, Lettuce, redis-py `RedisCluster`) caches the
slot map (`CLUSTER SLOTS` / `CLUSTER SHARDS`) and sends each command to the master it names,
one connection (and pipeline) per node. When a node answers `-MOVED <slot> <addr>` (a replica,
or a deposed master that learned the new configuration), or refuses the connection, the
client refreshes its map and sends the command to the new master: one extra round trip, no
error for the application. During a live resharding (`cluster_resharding`) a node answers
`-ASK` for a key of a migrating slot it no longer has: the client sends `ASKING` + the command
to the importing node, once, and keeps its map; a `-MOVED` after the slot changed owner makes
it fetch the whole map again (CLUSTER SHARDS, as the specification recommends), so one -MOVED
per stale map, not one per slot. While the cluster is down (`cluster-require-full-coverage yes` and a
slot not covered) every node answers `-CLUSTERDOWN`, an error the libraries pass on.

The router owns the workload (one `clients` host); each shard has its own connections
(`ShardClients`, the single-server `Clients` code pointed at that shard), which keep their own
timeouts, retries and held requests. Closed loop: a connection's pipeline is split by node and
its next pipeline leaves when every node has answered its part.
"""

from __future__ import annotations

import copy
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from models.redis.clients import CHUNK_MS, Clients
from models.redis.commands import GET
from models.redis.requests import Rows, concat_rows, take_rows
from models.redis.store import ERR_READONLY, ERR_REFUSED

if TYPE_CHECKING:
    from models.redis.cluster_model import ClusterModel
    from models.redis.cluster_shard import Shard
    from models.redis.model import RedisModel
    from simulator.workload import Batch

ERR_CLUSTERDOWN = 40  # -CLUSTERDOWN The cluster is down (an error reply: the write failed)
ERR_MOVED = 41  # -MOVED <slot> <addr>: another master owns the slot (the client redirects)
ERR_ASK = 42  # -ASK <slot> <addr>: the slot migrates and the key is not here (redirect once)
CLUSTERDOWN_REPLY_MS = 0.002  # model: the error is written at once (its loop time is not charged)
REDIRECT_REPLY_MS = 0.002  # model: -ASK / -MOVED are written at once, like CLUSTERDOWN


class ShardClients(Clients):
    """The connections to one shard's master, as the client's slot map names it."""

    model: Shard
    router: ClusterClients
    gated: list[Rows]

    @classmethod
    def for_shard(cls, base: Clients, shard: Shard, router: ClusterClients) -> ShardClients:
        """A copy of the `clients` host's state pointed at `shard` (shares node, rng, workload)."""
        clients = copy.copy(base)
        clients.__class__ = cls
        assert isinstance(clients, ShardClients)
        clients.model = shard
        clients.router = router
        clients.held_requests = []
        clients.held_replies = []
        clients.gated = []
        clients.gets = clients.hits = 0
        return clients

    def submit(self, rows: Rows, src: str = "clients", dst: str | None = None) -> None:
        """While the cluster is down, requests meet CLUSTERDOWN instead of the event loop; while
        slots move, requests for keys this master does not serve meet -ASK or -MOVED."""
        resharding = self.router.cluster.resharding
        if rows["arrival"].size and resharding is not None and resharding.redirecting():
            ask, moved = resharding.redirects(self.model, rows)
            if ask.any():
                self.redirect(take_rows(rows, ask), moved=False)
            if moved.any():
                self.redirect(take_rows(rows, moved), moved=True)
            if ask.any() or moved.any():
                rows = take_rows(rows, ~(ask | moved))
        if rows["arrival"].size and self.router.cluster.cluster_down(self.model):
            reads = self.passes_when_down(rows)
            if reads.any():
                super().submit(take_rows(rows, reads), src)
                rows = take_rows(rows, ~reads)
            if rows["arrival"].size:
                self.gated.append(rows)
            return
        super().submit(rows, src)

    def passes_when_down(self, rows: Rows) -> np.ndarray:
        """cluster-allow-reads-when-down yes: reads are still served while the cluster is down."""
        if not self.router.allow_reads:
            return np.zeros(rows["op"].size, dtype=bool)
        return rows["op"] == GET

    def on_replies(
        self,
        rows: Rows,
        reply_at: np.ndarray,
        end_row: np.ndarray,
        status: np.ndarray,
        aux: np.ndarray,
    ) -> None:
        """An error from a node that is no longer the master: refresh the map and redirect."""
        shard = self.model
        if shard.server is shard.master or not rows["arrival"].size:
            super().on_replies(rows, reply_at, end_row, status, aux)
            return
        shard.route_to(shard.master.name)
        redirect = ((status == ERR_REFUSED) | (status == ERR_READONLY)) & ~rows["gave_up"]
        redirect &= reply_at <= rows["deadline"]
        if redirect.any():
            self.router.redirects += int(redirect.sum())
            moved = take_rows(rows, redirect)
            # -MOVED names the new master: the command goes there one round trip later; a
            # refused connection first costs a CLUSTER SLOTS round trip to another node
            refresh = np.where(status[redirect] == ERR_REFUSED, self._slots_rtt(), 0.0)
            send = np.maximum(reply_at[redirect] + refresh, self.env.now)
            self.submit(self.redirected(moved, send))
        keep = ~redirect
        if keep.any():
            super().on_replies(
                take_rows(rows, keep), reply_at[keep], end_row[keep], status[keep], aux[keep]
            )

    def redirect(self, rows: Rows, moved: bool) -> None:
        """-ASK or -MOVED for these requests, written as they arrive; the client sends each
        again at the reply: ASKING + the command to the importing master, or, after refreshing
        its slot map, the command to the slot's new owner."""
        now = self.env.now
        n = int(rows["arrival"].size)
        reply_at = np.maximum(rows["arrival"], now) + REDIRECT_REPLY_MS + rows["reply_delay"]
        follow = ~rows["gave_up"] & (reply_at <= rows["deadline"])
        router = self.router
        if not follow.all():
            late = ~follow
            status = np.full(int(late.sum()), ERR_MOVED if moved else ERR_ASK, dtype=np.int8)
            Clients.on_replies(
                self, take_rows(rows, late), reply_at[late], reply_at[late], status, status * 0 - 1
            )
            rows, reply_at = take_rows(rows, follow), reply_at[follow]
            n = int(reply_at.size)
        if not n:
            return
        if moved:
            router.moved(rows, reply_at)
        else:
            router.asked(self.model, rows, reply_at)

    def _slots_rtt(self) -> float:
        master = self.model.master.name
        return float(self.net.delay("clients", master, 40) + self.net.delay(master, "clients", 0))

    # --- closed loop -------------------------------------------------------------------------------
    def _next_requests(self, conns: np.ndarray, at: np.ndarray) -> None:
        """This shard's part of each connection's pipeline is answered: tell the router."""
        self.router.part_done(conns, at)

    def feedback_bound(self, rows: Rows, m: int, end_row: np.ndarray) -> float:
        """Closed loop: another shard's replies can also send requests here, no earlier than
        the oldest request waiting on any other node."""
        bound = super().feedback_bound(rows, m, end_row)
        if self.closed:
            bound = min(bound, self.router.earliest_elsewhere(self.model))
        return bound

    # --- CLUSTERDOWN -------------------------------------------------------------------------------
    def gate(self, rows: Rows) -> None:
        """Requests in flight when the cluster went down: they will meet CLUSTERDOWN."""
        self.gated.append(rows)

    def gated_rows(self) -> int:
        return sum(int(r["arrival"].size) for r in self.gated)

    def answer_gated(self, now: float, reopen: bool) -> None:
        """Answer CLUSTERDOWN to what arrived by now; on reopening, send the rest on."""
        if not self.gated:
            return
        rows = concat_rows(self.gated)
        self.gated = []
        order = np.argsort(rows["arrival"], kind="stable")
        rows = take_rows(rows, order)
        arrived = rows["arrival"] <= now
        if arrived.any():
            down = take_rows(rows, arrived)
            n = int(arrived.sum())
            end = down["arrival"] + CLUSTERDOWN_REPLY_MS
            status = np.full(n, ERR_CLUSTERDOWN, dtype=np.int8)
            self.router.clusterdown_replies += n
            super().on_replies(down, end + down["reply_delay"], end, status, np.full(n, -1))
        rest = take_rows(rows, ~arrived)
        if not rest["arrival"].size:
            return
        if reopen:
            super().submit(rest)
        else:
            self.gated.append(rest)

    def redirected(self, rows: Rows, send: np.ndarray) -> Rows:
        """The same commands (same attempt) sent to this shard's node at `send` (after -MOVED,
        -ASK or a refused connection), in send order."""
        order = np.argsort(send, kind="stable")
        rows, send = take_rows(rows, order), send[order]
        return self.rebuild(rows, send, rows["attempt"])


class ClusterClients:
    """The `clients` host: one workload, routed by slot to each shard's connections."""

    def __init__(self, cluster: ClusterModel):
        self.cluster = cluster
        self.env = cluster.env
        shards = cluster.shards
        # the host node, the workload, the random streams (a shard offers what Clients uses)
        self.base = Clients(cast("RedisModel", shards[0]))
        self.node = self.base.node
        self.workload = self.base.workload
        self.per_shard = [ShardClients.for_shard(self.base, shard, self) for shard in shards]
        for shard, clients in zip(shards, self.per_shard, strict=True):
            shard.clients = clients
        self.producing = False
        self.allow_reads = cluster.config.cluster.allow_reads_when_down
        self.redirects = 0  # -MOVED (or a refused connection) followed, failover or resharding
        self.ask_redirects = 0
        self.map_refreshes = 0  # slot map fetched after a -MOVED of a resharding
        self.moved_after_reshard = 0  # -MOVED replies that reached the client after it ended
        self.refreshes_after_reshard = 0
        self.map_refreshed_ms = np.inf  # when the last refreshed slot map reached the client
        self.clusterdown_replies = 0
        self.commands_per_shard = np.zeros(len(shards), dtype=np.int64)
        connections = max(self.base.spec.clients, 1)
        self.outstanding = np.zeros(connections, dtype=np.int64)  # closed loop: parts unanswered
        self.ready_at = np.full(connections, -np.inf)

    def start(self) -> None:
        self.producing = True
        for clients in self.per_shard:
            clients.producing = True
        if self.base.closed:
            conns = np.arange(self.base.spec.clients)
            self._next_pipelines(conns, np.full(conns.size, self.env.now))
        else:
            self.env.process(self._produce())

    # --- closed loop: a connection sends its next pipeline when every shard answered its part ---
    def _next_pipelines(self, conns: np.ndarray, at: np.ndarray) -> None:
        base = self.base
        keep = at < base.ctx.duration_ms
        if not self.producing or not keep.any():
            return
        conns = conns[keep]
        op, msg, keys, sizes, intended, conn, _ = base.pipeline_commands(conns, at[keep])
        shard_of = self.cluster.slot_map.shards(keys)
        self.commands_per_shard += np.bincount(shard_of, minlength=len(self.per_shard))
        parts = np.unique(conn.astype(np.int64) * len(self.per_shard) + shard_of)
        np.add.at(self.outstanding, parts // len(self.per_shard), 1)
        self.ready_at[conns] = -np.inf
        for index, clients in enumerate(self.per_shard):
            sel = shard_of == index
            if not sel.any():
                continue
            own = conn[sel]
            first = np.r_[True, own[1:] != own[:-1]]
            clients.submit(
                clients.build(op[sel], msg[sel], keys[sel], sizes[sel], intended[sel], own, first)
            )

    def part_done(self, conns: np.ndarray, at: np.ndarray) -> None:
        """One shard answered these connections' parts (at: when each connection may go on)."""
        np.maximum.at(self.ready_at, conns, at)
        np.subtract.at(self.outstanding, conns, 1)
        done = np.unique(conns[self.outstanding[conns] <= 0])
        if done.size:
            self.outstanding[done] = 0
            self._next_pipelines(done, self.ready_at[done])

    def earliest_elsewhere(self, shard: Shard) -> float:
        """The oldest request waiting on a node of another shard, or at its gate."""
        earliest = np.inf
        for other in self.cluster.shards:
            if other is shard:
                continue
            for server in other.servers.values():
                earliest = min(earliest, server.queue.first_arrival())
            for rows in other.clients.gated:
                earliest = min(earliest, float(rows["arrival"].min(initial=np.inf)))
        return earliest

    def stop(self) -> None:
        self.producing = False
        for clients in self.per_shard:
            clients.producing = False

    def _produce(self) -> Generator[Any, Any, None]:
        env = self.env
        while self.producing and not self.workload.exhausted:
            batch = self.workload.next_batch(env.now + CHUNK_MS)
            if len(batch):
                self._emit(batch)
            yield env.timeout(CHUNK_MS)

    def _emit(self, batch: Batch) -> None:
        """Register the messages, then send each shard its commands (per-node pipelines)."""
        base = self.base
        op, msg = base.commands(batch.intended_ms, batch.keys)
        if not self.node.is_up:
            base._client_down(msg)
            return
        send, first, order = base._pipelines(batch.intended_ms, batch.producer)
        if order is not None:
            op, msg = op[order], msg[order]
            keys, sizes, conn = batch.keys[order], batch.sizes[order], batch.producer[order]
        else:
            keys, sizes, conn = batch.keys, batch.sizes, batch.producer
        shard_of = self.cluster.slot_map.shards(keys)
        packet = np.cumsum(first) - 1
        self.commands_per_shard += np.bincount(shard_of, minlength=len(self.per_shard))
        for index, clients in enumerate(self.per_shard):
            sel = shard_of == index
            if not sel.any():
                continue
            own_packet = packet[sel]
            own_first = np.r_[True, own_packet[1:] != own_packet[:-1]]
            rows = clients.build(
                op[sel], msg[sel], keys[sel], sizes[sel], send[sel], conn[sel], own_first
            )
            clients.submit(rows)

    # --- redirects of a live resharding ------------------------------------------------------------
    def asked(self, source: Shard, rows: Rows, reply_at: np.ndarray) -> None:
        """-ASK: ASKING + the command to the slot's importing master, once; the map stays."""
        self.ask_redirects += int(reply_at.size)
        slot_map = self.cluster.slot_map
        importing = slot_map.migrating_to[slot_map.slots(rows["key"])]
        # a slot whose migration finished meanwhile: the target owns it now
        importing = np.where(importing >= 0, importing, slot_map.owner[slot_map.slots(rows["key"])])
        for index in np.unique(importing).tolist():
            sel = importing == index
            target = self.per_shard[index]
            again = target.redirected(take_rows(rows, sel), reply_at[sel])
            # ASKING lets the target serve a slot it does not own yet: no -MOVED check there
            Clients.submit(target, again)

    def moved(self, rows: Rows, reply_at: np.ndarray) -> None:
        """-MOVED: fetch the slot map again (once for all that meet it now), send again.

        Open-loop commands are routed a chunk ahead of their send time: those sent after the
        refreshed map arrived would have gone to the right master, so they go there directly."""
        slot_map = self.cluster.slot_map
        if (slot_map.client_owner != slot_map.owner).any():
            slot_map.refresh_clients()
            self.map_refreshes += 1
            self.map_refreshed_ms = float(reply_at.min())
            resharding = self.cluster.resharding
            self.refreshes_after_reshard += int(
                resharding is not None and resharding.done_ms is not None
            )
        informed = rows["send"] >= self.map_refreshed_ms
        redirected = ~informed
        n = int(redirected.sum())
        self.redirects += n
        resharding = self.cluster.resharding
        if resharding is not None and resharding.done_ms is not None:
            self.moved_after_reshard += n
        send = np.where(informed, rows["send"], reply_at)
        owner = slot_map.shards(rows["key"])
        for index in np.unique(owner).tolist():
            sel = owner == index
            clients = self.per_shard[index]
            clients.submit(clients.redirected(take_rows(rows, sel), send[sel]))

    def network_changed(self) -> None:
        for clients in self.per_shard:
            clients.network_changed()

    def held(self) -> int:
        return sum(c.held() for c in self.per_shard)


__all__ = ["ERR_ASK", "ERR_CLUSTERDOWN", "ERR_MOVED", "ClusterClients", "ShardClients"]
