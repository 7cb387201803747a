"""Asynchronous replication (replication.c; "Replication" docs): a master and its replicas.

The master replies to the client *before* its replicas have the write: each iteration's writes
go into the replication stream in `beforeSleep`, after the command ran, and reach a replica one
network delay later. A replica's offset is therefore a prefix of the master's journal: the
positions the master had sent one delay ago (`sent_by`). Replicas send `REPLCONF ACK <offset>`
once per second (replicationCron); the master counts *good* replicas (acked within
`min-replicas-max-lag` s) for `min-replicas-to-write` and answers `WAIT` from the acks it asks
for with `REPLCONF GETACK` in beforeSleep (so WAIT costs one round trip).

A replica that loses its link reconnects with PSYNC: a partial resync if the bytes it missed are
still in the `repl-backlog-size` backlog, else a full resync (an RDB made, sent and loaded:
`repl_sync_mb_s`). A master that restarts has a new replication id: every replica resyncs in
full and takes whatever the master came back with (empty, without persistence: total loss).

Failover (driven by Sentinel) promotes a replica: it becomes the master with exactly the
dataset at its offset. Whatever the old master executed beyond that offset never reaches the
new master; when the old master is told to replicate the new one it throws it away (cause
`discarded_on_failover`).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from models.redis import dataset as ds
from models.redis.commands import AOF_BYTES_PER_WRITE, IS_WRITE, KEY_NAME_BYTES
from models.redis.replica_reads import ReplicaReads
from models.redis.requests import take_rows
from models.redis.store import ERR_NOREPLICAS, ERR_READONLY, ERR_WAIT_SHORT, NO_ANSWER, OK

if TYPE_CHECKING:
    from models.redis.model import RedisModel
    from models.redis.requests import Rows
    from models.redis.server import RedisServer

REPL_TICK_MS = 10.0  # model: how often a replica's link is advanced (data keeps its own timing)
ACK_PERIOD_MS = 1000.0  # replicationCron: REPLCONF ACK once per second
_NO_LIMIT = 1 << 62


@dataclass
class ReplicaLink:
    """One replica's view of the replication stream."""

    server: RedisServer
    offset: int = 0  # slave_repl_offset, in positions of the master's journal
    epoch: int = 0  # which master incarnation (replication id) the offset refers to
    connected: bool = True
    syncing_until: float = -np.inf  # a full resync in progress ends then
    sync_target: int = 0
    next_ack_ms: float = 0.0
    master_lost_at: float = np.nan  # the master death whose last data this link has taken
    cut_noted: float = np.nan  # start of the silent cut whose pre-cut data the link has taken
    cut_open: bool = False  # that cut has not been seen healed with the master serving
    cut_offset: int = 0  # the offset the replica had when that cut began
    cut_healed: float = np.inf  # when the stream flowed again after it
    acks: dict[str, float] = field(default_factory=dict)  # master -> last ACK arrival


class Replication:
    """The master, its replicas' links, and the masters that were deposed but not yet told."""

    def __init__(self, model: RedisModel, master: RedisServer, replicas: list[RedisServer]):
        self.model = model
        self.ctx = model.ctx
        self.env = model.env
        net = model.ctx.network
        assert net is not None, "replication and Sentinel need the network model"
        self.net = net
        config = model.config
        self.config = config
        self.master = master
        self.epoch = 0
        now = self.env.now
        self.links = {
            r.name: ReplicaLink(r, next_ack_ms=now, acks={master.name: now}) for r in replicas
        }
        self.stale: dict[str, int] = {}  # deposed master -> position where it diverged
        # deposed master -> last ACK times of the replicas promoted in its place that it never
        # heard leave (their REPLICAOF NO ONE closed a connection it could not reach)
        self.departed_acks: dict[str, list[float]] = {}
        self._promoting: ReplicaLink | None = None  # still a replica for the loop's catch-up
        self.entry_bytes = model.value_bytes + AOF_BYTES_PER_WRITE + KEY_NAME_BYTES
        self.max_lag_ms = (config.min_replicas_max_lag + 1) * 1000.0
        self.repl_timeout_ms = config.repl_timeout * 1000.0
        self.wait_replicas = config.client.wait_replicas
        # workloads whose writes are consumed (stream entries, list items), not read at the end
        self.consumed = config.workload in ("stream", "list")
        timeout = config.client.wait_timeout_ms
        self.wait_timeout_ms = timeout if timeout > 0 else np.inf
        self.full_resyncs = 0
        self.partial_resyncs = 0
        self.failovers = 0
        self._reset_timeline(master.store.journal.end)
        self.reads: ReplicaReads | None = None
        if (
            config.workload == "kv"
            and config.ops.read_ratio > 0
            and not config.cluster.enabled
            and hasattr(model, "servers")
        ):
            self.reads = ReplicaReads(self)

    def start(self) -> None:
        for link in self.links.values():
            link.server.spawn(self._stream(link.server.name))

    # --- the stream --------------------------------------------------------------------------
    def _reset_timeline(self, position: int) -> None:
        self._times = [np.array([self.env.now])]
        self._positions = [np.array([position], dtype=np.int64)]

    def position(self) -> int:
        return self.master.store.journal.end

    def executed(
        self, server: RedisServer, rows: Rows, end_row: np.ndarray, status: np.ndarray, pos0: int
    ) -> None:
        """The master's iterations put their writes into the stream at their end (beforeSleep)."""
        if server is not self.master:
            return
        pos1 = server.store.journal.end
        if pos1 == pos0 or not end_row.size:
            return
        row_ends = server.store.row_ends
        if row_ends is not None and row_ends.size == status.size:
            # commands that journal several entries (XREADGROUP, XAUTOCLAIM) or none
            after = row_ends.copy()
            sel = np.r_[row_ends[:1] > pos0, row_ends[1:] > row_ends[:-1]]
        else:
            writes = IS_WRITE[rows["op"]] & (status == OK)
            after = np.minimum(pos0 + np.cumsum(writes), pos1)
            sel = writes.copy()
        after[-1] = pos1
        sel[-1] = True
        self._times.append(end_row[sel])
        self._positions.append(after[sel].astype(np.int64))
        if len(self._times) > 256:
            times, positions = np.concatenate(self._times), np.concatenate(self._positions)
            keep = max(0, int(np.searchsorted(times, self.env.now - 5000.0)) - 1)
            self._times, self._positions = [times[keep:]], [positions[keep:]]

    def propagated(self, t_ms: float) -> None:
        """Changes journaled outside the loop's commands (a MIGRATE's RESTORE and DEL) enter
        the stream at `t_ms`."""
        self._times.append(np.array([t_ms]))
        self._positions.append(np.array([self.position()], dtype=np.int64))

    def sent_by_many(self, t_ms: np.ndarray) -> np.ndarray:
        """`sent_by` of several moments at once."""
        self.sent_by(0.0)  # joins the timeline chunks
        times, positions = self._times[0], self._positions[0]
        i = np.searchsorted(times, t_ms, side="right") - 1
        return positions[np.maximum(i, 0)].astype(np.int64)

    def sent_by(self, t_ms: float) -> int:
        """The master's journal position that had left it by `t_ms`."""
        if len(self._times) > 1:
            self._times = [np.concatenate(self._times)]
            self._positions = [np.concatenate(self._positions)]
        times, positions = self._times[0], self._positions[0]
        i = int(np.searchsorted(times, t_ms, side="right")) - 1
        return int(positions[max(i, 0)])

    def _stream(self, name: str) -> Generator[Any, Any, None]:
        while name in self.links:
            yield self.env.timeout(REPL_TICK_MS)
            if name in self.links:
                self._tick(self.links[name])

    def _tick(self, link: ReplicaLink) -> None:
        from models.redis.server import DOWN, SERVING

        now = self.env.now
        replica, master = link.server, self.master
        if not replica.is_running or replica.is_paused:
            return
        if not (
            self.net.reachable(master.name, replica.name)
            and self.net.reachable(replica.name, master.name)
        ):
            if link.connected:
                down = self.net.link(master.name, replica.name)
                if not down.cut_count:
                    down = self.net.link(replica.name, master.name)
                since = down.cut_since_ms
                if link.cut_noted != since:
                    # what had reached the replica before the cut is applied (the link is only
                    # looked at every REPL_TICK_MS; WAIT counted those writes as acknowledged)
                    link.cut_noted = since
                    link.cut_open = True
                    arrived_by = since - self._delay(master, replica)
                    if link.epoch == self.epoch and link.syncing_until == -np.inf:
                        link.offset = max(link.offset, self.sent_by(arrived_by))
                    link.cut_offset = link.offset
                    link.cut_healed = np.inf
                # a cut is silent: TCP keeps the connection until repl-timeout passes without
                # data or PING (replicationCron: "MASTER timeout"); a heal before that just
                # lets the stream flow on
                if now - since >= self.repl_timeout_ms:
                    link.connected = False
                    self.ctx.event(
                        "replica_disconnected",
                        replica.name,
                        master=master.name,
                        silent_for_ms=now - since,
                    )
            return
        if master.serving == DOWN:
            # a crashed process's kernel still sends what it had written; a host that lost
            # power takes with it what was still queued on it (one link delay's worth)
            died = master.crashed_at_ms
            if (
                link.master_lost_at != died
                and link.connected
                and link.epoch == self.epoch
                and link.syncing_until == -np.inf
            ):
                link.master_lost_at = died
                cutoff = died
                if master.down_reply == NO_ANSWER:
                    cutoff -= self._delay(master, replica)
                if link.cut_open:
                    # it died behind a cut that never healed while it served: what it sent
                    # after the cut began never left its socket buffers
                    cutoff = min(cutoff, link.cut_noted)
                link.offset = max(link.offset, self.sent_by(cutoff))
            return
        if master.serving != SERVING:
            return  # a LOADING master does not serve PSYNC
        if not link.connected or link.epoch != self.epoch:
            if not master.frozen:  # a paused master answers no PSYNC
                self._resync(link)
            return
        if link.cut_open:
            link.cut_open = False
            link.cut_healed = now
        if link.syncing_until > now:
            return
        if link.syncing_until > -np.inf:
            link.offset = link.sync_target
            link.syncing_until = -np.inf
            self.ctx.event("sync_done", replica.name, offset=link.offset)
        link.offset = max(link.offset, self.sent_by(now - self._delay(master, replica)))
        if now >= link.next_ack_ms:
            link.next_ack_ms = now + ACK_PERIOD_MS
            link.acks[master.name] = now + self._delay(replica, master)

    def _delay(self, src: RedisServer, dst: RedisServer) -> float:
        return float(self.net.delay(src.name, dst.name, 0))

    def _resync(self, link: ReplicaLink) -> None:
        """PSYNC after a (re)connection: partial from the backlog, else full (RDB transfer)."""
        master = self.master
        now = self.env.now
        position = self.position()
        missed = (position - link.offset) * self.entry_bytes
        link.connected = True
        if link.epoch == self.epoch and 0 <= missed <= self.config.repl_backlog_bytes:
            self.partial_resyncs += 1
            self.ctx.event("partial_resync", link.server.name, offset=link.offset, to=position)
            return
        self.full_resyncs += 1
        nbytes = max(0.0, float(master.store.memory.dataset_bytes))
        sync_ms = nbytes / (self.config.repl_sync_mb_s * 2**20) * 1000.0
        sync_ms += self._delay(master, link.server) + self._delay(link.server, master)
        link.epoch = self.epoch
        link.sync_target = position
        link.syncing_until = now + sync_ms
        self.ctx.event("full_resync", link.server.name, master=master.name, sync_ms=sync_ms)

    # --- what the master decides from its replicas -------------------------------------------
    def good_replicas(self, server: RedisServer, t_ms: float) -> int:
        """Replicas `server` lists as online whose last ACK is at most min-replicas-max-lag s
        old (refreshGoodSlavesCount: `replstate == ONLINE && lag <= max-lag`)."""
        limit = t_ms - self.max_lag_ms
        if server is self.master:
            links = [*self.links.values()]
            if self._promoting is not None:
                links.append(self._promoting)
            return sum(
                1
                for link in links
                if self._online(link, t_ms) and link.acks.get(server.name, -np.inf) > limit
            )
        # a deposed master knows nothing of the failover: it counts the replicas by the last
        # ACK each sent it, the promoted ones included unless it saw their connection close
        acks = [link.acks.get(server.name, -np.inf) for link in self.links.values()]
        acks += self.departed_acks.get(server.name, [])
        return sum(1 for ack in acks if ack > limit)

    def _online(self, link: ReplicaLink, t_ms: float) -> bool:
        """The master still lists the replica as an online one: a replica whose process died
        closed the connection (freeClient drops it at once; a host that lost power sends no
        FIN), one that reconnects or loads a full resync is not online yet."""
        replica = link.server
        if not replica.is_running and replica.down_reply != NO_ANSWER:
            return False
        return link.epoch == self.epoch and link.connected and link.syncing_until <= t_ms

    def write_refusal(self, server: RedisServer, t_ms: float) -> int:
        """The error a write gets on `server` now (0: none)."""
        if server is not self.master and server.name not in self.stale:
            return ERR_READONLY  # replica-read-only yes
        need = self.config.min_replicas_to_write
        if need and self.good_replicas(server, t_ms) < need:
            return ERR_NOREPLICAS
        return 0

    def fold_floor(self, server: RedisServer) -> int:
        """The journal of `server` must keep what a promotion or a discard may still need."""
        if server is self.master:
            needed = [
                min(link.offset, link.sync_target) if link.syncing_until > -np.inf else link.offset
                for link in self.links.values()
                if link.epoch == self.epoch
            ]
            if self.reads is not None:
                needed.append(self.reads.floor())
            return min(needed, default=_NO_LIMIT)
        return self.stale.get(server.name, _NO_LIMIT)

    def reply(
        self,
        server: RedisServer,
        rows: Rows,
        end_row: np.ndarray,
        reply_at: np.ndarray,
        status: np.ndarray,
        aux: np.ndarray,
    ) -> None:
        """Send the replies; with WAIT, a write's reply leaves when WAIT returns (if the master
        is still alive then)."""
        clients = self.model.clients
        if self.reads is not None:
            status = self.reads.served(server, rows, end_row, status)
        if not self.wait_replicas:
            clients.on_replies(rows, reply_at, end_row, status, aux)
            return
        reply_at, status, waiting = self._wait(server, rows, end_row, reply_at, status)
        never = waiting & ~np.isfinite(reply_at)
        if never.any():
            # WAIT with no timeout and too few replicas that can ack: no reply ever comes, the
            # client times out (indeterminate, or a retry); nothing to hold for it
            waiting = waiting & ~never
        if not waiting.any():
            clients.on_replies(rows, reply_at, end_row, status, aux)
            return
        now = self.env.now
        if not waiting.all():
            rest = ~waiting
            clients.on_replies(
                take_rows(rows, rest), reply_at[rest], end_row[rest], status[rest], aux[rest]
            )
        held = (take_rows(rows, waiting), reply_at[waiting], end_row[waiting], status[waiting])
        incarnation = server.incarnation
        timer = self.env.timeout(max(0.0, float(np.max(held[1])) - now))
        timer.callbacks.append(lambda _ev: self._wait_returned(server, incarnation, *held))

    def _wait_returned(
        self,
        server: RedisServer,
        incarnation: int,
        rows: Rows,
        reply_at: np.ndarray,
        end_row: np.ndarray,
        status: np.ndarray,
    ) -> None:
        if server.incarnation != incarnation or not server.is_running:
            # the master died while WAIT blocked: replies it had not sent never come
            sent_at = reply_at - rows["reply_delay"]
            gone = sent_at > server.crashed_at_ms
            reply_at = np.where(gone, np.inf, reply_at)
            status = np.where(gone, NO_ANSWER, status).astype(np.int8)
        n = reply_at.size
        self.model.clients.on_replies(rows, reply_at, end_row, status, np.full(n, -1))

    def _wait(
        self,
        server: RedisServer,
        rows: Rows,
        end_row: np.ndarray,
        reply_at: np.ndarray,
        status: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """WAIT n after each write: its reply comes when n replicas acked the write's offset
        (GETACK sent in beforeSleep: one round trip), or at the timeout with fewer."""
        n = self.wait_replicas
        writes = IS_WRITE[rows["op"]] & (status == OK) & (rows["msg"] >= 0)
        if not writes.any():
            return reply_at, status, writes
        k = int(writes.sum())
        acks = []
        for link in self.links.values():
            replica = link.server
            ok = (
                server is self.master
                and link.epoch == self.epoch
                and link.connected
                and link.syncing_until <= self.env.now
                and replica.is_running
                and not replica.is_paused
                and self.net.reachable(server.name, replica.name)
                and self.net.reachable(replica.name, server.name)
            )
            if ok:
                rtt = self.net.delays(server.name, replica.name, k, self.entry_bytes)
                rtt = rtt + self.net.delays(replica.name, server.name, k, 0)
                acks.append(end_row[writes] + rtt)
            else:
                acks.append(np.full(k, np.inf))
        # fewer replicas than WAIT asks for (e.g. after a failover took one as the master):
        # WAIT returns the count it got at the timeout
        nth = np.sort(np.vstack(acks), axis=0)[n - 1] if len(acks) >= n else np.full(k, np.inf)
        limit = end_row[writes] + self.wait_timeout_ms
        enough = nth <= limit
        reply_at = reply_at.copy()
        status = status.copy()
        back = reply_at[writes] - end_row[writes]
        reply_at[writes] = np.minimum(nth, limit) + back
        short = np.flatnonzero(writes)[~enough]
        status[short] = ERR_WAIT_SHORT
        return reply_at, status, writes

    # --- failover ------------------------------------------------------------------------------
    def candidates(self, reachable_from: str) -> list[RedisServer]:
        """Replicas Sentinel may promote: up, reachable, in sync; best priority, then offset."""
        if self.config.replica_priority == 0:
            return []
        good = [
            link
            for link in self.links.values()
            if link.server.is_running
            and link.epoch == self.epoch
            and link.syncing_until == -np.inf
            and self.net.reachable(reachable_from, link.server.name)
        ]
        good.sort(key=lambda link: (-link.offset, link.server.name))
        return [link.server for link in good]

    def promote(self, replica: RedisServer) -> None:
        """REPLICAOF NO ONE: the replica becomes the master with the dataset at its offset."""
        old = self.master
        link = self.links.pop(replica.name)
        diverged_at = link.offset
        if old.name in link.acks and not self.net.reachable(replica.name, old.name):
            # REPLICAOF NO ONE closes its link to the old master, which never hears it: it
            # keeps counting this replica by its last ACK (min-replicas-to-write)
            self.departed_acks.setdefault(old.name, []).append(link.acks[old.name])
        # the iterations committed now ran before the promotion, this replica still attached
        self._promoting = link
        self.model.settle()
        self._promoting = None
        if self.reads is not None:
            self.reads.retire()
        image = old.store.state_at(diverged_at)
        # a stream entry or list item the old master had beyond the offset may still be
        # processed by a consumer that read it there: its loss is decided when the old master
        # is told to drop it (demote, or the end of the run), not now
        discarded = self._discard(old, diverged_at, record=not self.consumed)
        self.stale[old.name] = diverged_at
        replica.store.load(image)
        replica.persistence.restarted(diverged_at)
        # a replica keeps the RDB of its last full sync on disk: a restart of the new master
        # starts from (at least) the dataset it was promoted with
        replica.persistence.initial_files()
        replica.persistence.aof_base_pos = diverged_at
        self.master = replica
        self.epoch += 1
        self.failovers += 1
        self._reset_timeline(diverged_at)
        if self.reads is not None:
            self.reads.reset()
        now = self.env.now
        for other in self.links.values():
            # PSYNC2: a replica at or behind the promoted one's offset continues partially
            if other.epoch == self.epoch - 1 and other.offset <= diverged_at:
                other.epoch = self.epoch
            other.acks[replica.name] = now
        replica.role, old.role = "server", "replica"
        self.ctx.event(
            "failover",
            replica.name,
            new_primary=replica.name,
            old_primary=old.name,
            offset=diverged_at,
            discarded=discarded,
        )
        self.ctx.event("role_change", replica.name, role="primary")
        if self.consumed:
            self.model.group_state_reset("redelivered_after_failover")

    def demote(self, server: RedisServer) -> None:
        """REPLICAOF <new master> sent to a deposed master: it drops what it diverged with."""
        diverged_at = self.stale.pop(server.name)
        server.settle()
        discarded = self._discard(server, diverged_at)
        if self.consumed:
            self.model.unblock(server)  # -UNBLOCKED: blocked consumers ask again elsewhere
        server.store.load(self.master.store.image())
        self.links[server.name] = ReplicaLink(
            server, offset=0, epoch=-1, connected=False, next_ack_ms=self.env.now
        )
        server.spawn(self._stream(server.name))
        self.ctx.event("role_change", server.name, role="replica", discarded=discarded)

    def _discard(self, server: RedisServer, diverged_at: int, record: bool = True) -> int:
        """Writes `server` executed beyond `diverged_at`: gone with its dataset. A stream entry
        or list item that a consumer already processed (or is processing) is not lost."""
        entries = server.store.journal.entries(diverged_at)
        value, kind, _retry = ds.decode(entries)
        ids = value[kind == ds.WRITE]
        ids = ids[~self.model.carried_away(ids)]
        if self.consumed and ids.size:
            ids = ids[(self.ctx.history.deliveries[ids] == 0) & ~self.model.processing(ids)]
        if ids.size and record:
            self.ctx.history.lose(ids, "discarded_on_failover", self.env.now)
        return int(ids.size)

    def discard_stale(self) -> None:
        """At the end: a deposed master nobody reconfigured still holds writes nobody else has."""
        for name, diverged_at in list(self.stale.items()):
            server = self.model.servers[name]
            server.settle()
            self._discard(server, diverged_at)

    def rejoin(self, server: RedisServer) -> None:
        """A replica (or deposed master) restarted: it resynchronizes from the master in full."""
        if server.name in self.stale:
            self.demote(server)
            return
        link = self.links[server.name]
        link.epoch = -1
        link.connected = False
        link.syncing_until = -np.inf
        server.spawn(self._stream(server.name))

    def master_restarted(self, position: int) -> None:
        """A new replication id: every replica must resync in full (and takes what it finds)."""
        self.epoch += 1
        self._reset_timeline(position)
        if self.reads is not None:
            self.reads.reset()

    # --- observations -----------------------------------------------------------------------------
    def _catch_up(self) -> None:
        """Advance every replica link to now before observing it (links tick every 10 ms)."""
        for link in list(self.links.values()):
            self._tick(link)

    def lag(self) -> float:
        """Largest replication lag, in journal entries (writes), among connected replicas."""
        self._catch_up()
        position = self.position()
        lags = [
            position - link.offset
            for link in self.links.values()
            if link.epoch == self.epoch and link.syncing_until == -np.inf
        ]
        return float(max(lags, default=0))

    def staleness_ms(self) -> float:
        """How old the oldest write a replica lacks is (0: up to date): the staleness of a read
        served by the most lagging connected replica."""
        self._catch_up()
        self.sent_by(self.env.now)  # joins the timeline chunks
        times, positions = self._times[0], self._positions[0]
        worst = 0.0
        for link in self.links.values():
            if link.epoch != self.epoch or link.syncing_until != -np.inf:
                continue
            i = int(np.searchsorted(positions, link.offset, side="right"))
            if i < positions.size:
                worst = max(worst, self.env.now - float(times[i]))
        return worst

    def summary(self) -> dict[str, Any]:
        return {
            "master": self.master.name,
            "full_resyncs": self.full_resyncs,
            "partial_resyncs": self.partial_resyncs,
            "failovers": self.failovers,
            "offsets": {name: link.offset for name, link in self.links.items()},
        }
