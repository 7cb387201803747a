"""Live resharding: `redis-cli --cluster reshard` moves hash slots from one master to another.

Sources: the Redis Cluster specification ("Live resharding", "ASK redirection", "MOVED
Redirection"), the MIGRATE and CLUSTER SETSLOT command pages, and redis-cli.c
`clusterManagerMoveSlot` (Redis 7.x). For each slot, one at a time, redis-cli sends:

1. `CLUSTER SETSLOT <slot> IMPORTING <source>` to the target, then `CLUSTER SETSLOT <slot>
   MIGRATING <target>` to the source;
2. `CLUSTER GETKEYSINSLOT <slot> <pipeline>` to the source and `MIGRATE <target> "" 0 <timeout>
   KEYS k1 .. kn` of those keys, until the source has no key left in the slot
   (`--cluster-pipeline`, default 10 keys per call);
3. `CLUSTER SETSLOT <slot> NODE <target>` to the target, then the source, then the other masters.

MIGRATE is atomic and synchronous: the source serializes the keys (DUMP format), sends them,
waits for the target to RESTORE them and answer, and only then deletes them; its event loop
serves nobody meanwhile, for a time that grows with the bytes. A key is therefore on exactly
one node at any moment and nothing acknowledged is lost.

While a slot is MIGRATING the source still serves a command whose key it has; for a key it does
not have (moved already, or not created yet) it answers `-ASK <slot> <target>`, and the client
sends `ASKING` + the command to the target, once, without changing its slot map. After SETSLOT
NODE the source answers `-MOVED <slot> <target>` and the client refreshes its slot map
(`cluster_clients`).

Model simplifications: the CLUSTER SETSLOT and GETKEYSINSLOT commands cost their round trip
from the redis-cli host (`clients`) but no loop time, and take effect when they reach the node
(not behind its backlog); -ASK and -MOVED replies cost no loop time; a resharding stops (as
redis-cli does on an error) if the source or the target is not serving, leaving the slot
MIGRATING.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from models.redis import dataset as ds
from models.redis.commands import KEY_NAME_BYTES, SLOW, VALUE_COPY_US_PER_BYTE
from models.redis.replies import WORKER_BASE
from models.redis.requests import empty_rows
from models.redis.server import SERVING
from models.redis.stats import STALL_CONN

if TYPE_CHECKING:
    from models.redis.cluster_config import ReshardConfig
    from models.redis.cluster_model import ClusterModel
    from models.redis.cluster_shard import Shard
    from models.redis.requests import Rows
    from models.redis.server import RedisServer

# MIGRATE costs, µs at cpu_speed 1 (model calibration, same scale as `commands`): reading and
# parsing the command, the write() of the payload to the target's socket, the read() of its
# reply and the reply to redis-cli; per key DUMP (RDB serialization + CRC64) and the DEL once
# the target answered; per key RESTORE on the target; per byte a copy to serialize and one to
# checksum on the source, one to load on the target.
MIGRATE_FIXED_US = 10.0
DUMP_US_PER_KEY = 1.5
RESTORE_US_PER_KEY = 2.0
ADMIN_REQUEST_BYTES = 60  # a CLUSTER SETSLOT / GETKEYSINSLOT request
ADMIN_REPLY_BYTES = 10  # "+OK\r\n"
POLL_MS = 0.1  # model: how often redis-cli's wait for a MIGRATE reply looks at the source loop
WAIT_MS = 10.0  # model: how often a wait for a paused or cut-off master looks again


class Resharding:
    """One `redis-cli --cluster reshard` run, and the slot states the nodes answer from."""

    def __init__(self, cluster: ClusterModel, spec: ReshardConfig):
        self.cluster = cluster
        self.ctx = cluster.ctx
        self.env = cluster.env
        net = cluster.ctx.network
        assert net is not None, "Redis Cluster needs the network model"
        self.net = net
        self.spec = spec
        self.slot_map = cluster.slot_map
        self.value_bytes = cluster.value_bytes
        self.scale = cluster.costs.scale  # µs -> ms at this CPU speed
        self.slots_migrated = 0
        self.keys_migrated = 0
        self.migrate_calls = 0
        self.migrate_stall_ms = 0.0
        self.started_ms: float | None = None
        self.done_ms: float | None = None
        self.running = False
        self.migrating = 0  # slots in MIGRATING state now
        # per source shard: the keys a MIGRATE carried away from it
        self._carried: dict[int, list[np.ndarray]] = {}

    def start(self) -> None:
        if self.spec.slots:
            self.env.process(self._run())

    # --- what a node answers -------------------------------------------------------------------
    def redirecting(self) -> bool:
        """Can a command meet -ASK or -MOVED (a slot migrates, or the clients' map is old)?"""
        return self.migrating > 0 or self.slots_migrated > 0

    def redirects(self, shard: Shard, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
        """(-ASK, -MOVED) masks of client requests that reach `shard`'s master."""
        keys = rows["key"]
        conn = rows["conn"]
        slots = self.slot_map.slots(keys)
        clients = (conn >= 0) & (conn < WORKER_BASE)
        moved = clients & (self.slot_map.owner[slots] != shard.index)
        migrating = clients & ~moved & (self.slot_map.migrating_to[slots] >= 0)
        if migrating.any():
            migrating &= shard.master.store.live.value[keys] < 0
        return migrating, moved

    # --- redis-cli ------------------------------------------------------------------------------
    def _run(self) -> Generator[Any, Any, None]:
        spec = self.spec
        yield self.env.timeout(max(0.0, spec.at_s * 1000.0 - self.env.now))
        shards = self.cluster.shards
        source, target = shards[spec.from_shard], shards[spec.to_shard]
        slots = self.slot_map.slots_of(source.index)[: spec.slots]
        self.running = True
        self.started_ms = self.env.now
        self.cluster.reshard_started()
        self.ctx.event(
            "reshard_started",
            "clients",
            source=source.master.name,
            target=target.master.name,
            slots=int(slots.size),
            pipeline=spec.pipeline,
        )
        for slot in slots.tolist():
            moved = yield from self._move_slot(slot, source, target)
            if not moved:
                self.ctx.event(
                    "reshard_aborted",
                    "clients",
                    slot=slot,
                    source=source.master.name,
                    target=target.master.name,
                    slots_migrated=self.slots_migrated,
                )
                break
        self.running = False
        self.done_ms = self.env.now
        self.cluster.reshard_done()
        if self.slots_migrated < slots.size:
            return
        self.ctx.event(
            "reshard_done",
            "clients",
            slots_migrated=self.slots_migrated,
            keys_migrated=self.keys_migrated,
            migrate_calls=self.migrate_calls,
            duration_s=round((self.done_ms - self.started_ms) / 1000.0, 6),
        )

    def _move_slot(self, slot: int, source: Shard, target: Shard) -> Generator[Any, Any, bool]:
        """clusterManagerMoveSlot: IMPORTING, MIGRATING, MIGRATE until empty, SETSLOT NODE.

        Round trips that change nothing in between are waited in one timeout."""
        src = source.master
        # SETSLOT <slot> IMPORTING <source> to the target, then MIGRATING <target> to the source
        yield self.env.timeout(self._rtt(target.master) + self._there(src))
        if not (yield from self._answering(source, target, src)):
            return False
        self.slot_map.migrating_to[slot] = target.index
        self.migrating += 1
        # queued commands for keys the source does not have meet -ASK from now on
        self._redirect_queued(source, self.slot_map.keys_in_slot(slot), moved=False)
        wait = self._back(src)
        pipeline = self.spec.pipeline
        while True:
            # CLUSTER GETKEYSINSLOT <slot> <pipeline>
            yield self.env.timeout(wait + self._there(src))
            if not (yield from self._answering(source, target, src)):
                return False
            src.settle()
            keys = self.slot_map.keys_in_slot(slot)
            keys = keys[src.store.live.value[keys] >= 0][:pipeline]
            wait = self._back(src)
            if not keys.size:
                break
            yield self.env.timeout(wait)
            migrated = yield from self._migrate(source, target, keys)
            if not migrated:
                return False
            wait = 0.0
        # SETSLOT <slot> NODE <target> to the target, then to the source
        yield self.env.timeout(wait + self._rtt(target.master) + self._there(src))
        if not (yield from self._answering(source, target, src)):
            return False
        self.slot_map.owner[slot] = target.index
        self.slot_map.migrating_to[slot] = -1
        self.migrating -= 1
        self.slots_migrated += 1
        # from now on the source answers -MOVED for the slot
        self._redirect_queued(source, self.slot_map.keys_in_slot(slot), moved=True)
        wait = self._back(src)
        for other in self.cluster.shards:
            if other is not source and other is not target:
                wait += self._rtt(other.master)  # SETSLOT <slot> NODE <target>
        yield self.env.timeout(wait)
        return True

    def _migrate(self, source: Shard, target: Shard, keys: np.ndarray) -> Generator[Any, Any, bool]:
        """MIGRATE: a stall of the source loop (serialize, send, wait for RESTORE, delete)."""
        src, dst = source.master, target.master
        n = int(keys.size)
        payload = n * (self.value_bytes + KEY_NAME_BYTES)
        copy_us = VALUE_COPY_US_PER_BYTE * payload
        source_us = MIGRATE_FIXED_US + n * DUMP_US_PER_KEY + 2.0 * copy_us
        target_ms = (n * RESTORE_US_PER_KEY + copy_us) * self.scale
        to_target = float(self.net.delay(src.name, dst.name, payload))
        from_target = float(self.net.delay(dst.name, src.name, ADMIN_REPLY_BYTES))
        stall_ms = source_us * self.scale + to_target + target_ms + from_target
        arrival = self.env.now + self._there(src, ADMIN_REQUEST_BYTES + 20 * n)
        self.migrate_calls += 1
        marker = -1000 - self.migrate_calls
        src.submit(_stall_row(arrival, stall_ms, marker))
        dst.submit(_stall_row(arrival + to_target, target_ms, -1))  # RESTORE on the target
        self.migrate_stall_ms += stall_ms
        yield self.env.timeout(arrival + stall_ms - self.env.now)
        while True:
            if not self._serving(source, target, src):
                return False
            src.settle()  # the source's iterations up to now, the MIGRATE's among them?
            if not _queued(src, marker):
                break
            yield self.env.timeout(POLL_MS)
        # the MIGRATE ran: the keys are on the target (RESTORE) and gone from the source (DEL)
        self.keys_migrated += self._move_keys(source.index, src, dst, keys)
        self._redirect_queued(source, keys, moved=False)
        yield self.env.timeout(self._back(src))
        return True

    def _move_keys(self, shard: int, src: RedisServer, dst: RedisServer, keys: np.ndarray) -> int:
        """The values move with their message ids; both changes go to the AOF and replicas."""
        now = self.env.now
        source, target = src.store, dst.store
        values = source.live.value[keys]
        present = values >= 0
        keys, values = keys[present], values[present]
        n = int(keys.size)
        if not n:
            return 0
        nbytes = np.full(n, self.value_bytes, dtype=np.int64)
        target._apply_sets(values, keys, nbytes, np.zeros(n, dtype=np.int8), np.full(n, now))
        source.live.value[keys] = -1
        source.live.expire_at[keys] = np.inf
        source.memory.delete(keys)
        source.journal.append(ds.encode(keys, ds.DEL))
        source.dirty += n
        self._carried.setdefault(shard, []).append(keys)
        for server in (src, dst):
            replication = server.model.replication
            if replication is not None and replication.master is server:
                replication.propagated(now)
        return n

    def carried_from(self, shard: int) -> np.ndarray:
        """The keys a MIGRATE carried away from `shard` (sorted, distinct)."""
        parts = self._carried.get(shard)
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(parts))

    def _redirect_queued(self, shard: Shard, keys: np.ndarray, moved: bool) -> None:
        """Commands queued at the source for these keys meet -ASK (or -MOVED) instead."""
        server = shard.server
        if not len(server.queue):
            return
        queued = np.zeros(self.slot_map.n_keys, dtype=bool)
        queued[keys] = True
        conn = server.queue.field("conn")
        sel = (conn >= 0) & (conn < WORKER_BASE) & queued[server.queue.field("key")]
        if not moved and sel.any():
            sel &= shard.master.store.live.value[server.queue.field("key")] < 0
        if sel.any():
            shard.clients.redirect(server.queue.remove(sel), moved=moved)

    # --- helpers ----------------------------------------------------------------------------------
    def _there(self, server: RedisServer, nbytes: int = ADMIN_REQUEST_BYTES) -> float:
        return float(self.net.delay("clients", server.name, nbytes))

    def _back(self, server: RedisServer) -> float:
        return float(self.net.delay(server.name, "clients", ADMIN_REPLY_BYTES))

    def _rtt(self, server: RedisServer) -> float:
        """One admin command's round trip from redis-cli."""
        return self._there(server) + self._back(server)

    def _serving(self, source: Shard, target: Shard, src: RedisServer) -> bool:
        """Both masters serve, and the source is still the node redis-cli talks to (a crash, a
        restart's LOADING or a failover ends the resharding with an error, as in redis-cli)."""
        return source.master is src and src.serving == SERVING and target.master.serving == SERVING

    def _answering(
        self, source: Shard, target: Shard, src: RedisServer
    ) -> Generator[Any, Any, bool]:
        """Wait while a master is paused or cut off (redis-cli waits for the reply over TCP);
        False if the resharding cannot go on."""
        while True:
            if not self._serving(source, target, src):
                return False
            dst = target.master
            if (
                not src.is_paused
                and not dst.is_paused
                and self.net.reachable("clients", src.name)
                and self.net.reachable(src.name, "clients")
                and self.net.reachable(src.name, dst.name)
            ):
                return True
            yield self.env.timeout(WAIT_MS)

    def summary(self) -> dict[str, float | int | None]:
        return {
            "slots_migrated": self.slots_migrated,
            "keys_migrated": self.keys_migrated,
            "migrate_calls": self.migrate_calls,
            "migrate_stall_ms": round(self.migrate_stall_ms, 6),
            "reshard_s": None
            if self.done_ms is None or self.started_ms is None
            else round((self.done_ms - self.started_ms) / 1000.0, 6),
        }


def _stall_row(arrival: float, cost_ms: float, marker: int) -> Rows:
    """A synthetic command that holds the event loop for `cost_ms` (no client, no reply)."""
    row = empty_rows(1)
    row["arrival"][:] = arrival
    row["send"][:] = arrival
    row["deadline"][:] = np.inf
    row["cost"][:] = cost_ms
    row["op"][:] = SLOW
    row["conn"][:] = STALL_CONN
    row["msg"][:] = marker
    row["key"][:] = 0
    row["first"][:] = True
    row["last"][:] = True
    return row


def _queued(server: RedisServer, marker: int) -> bool:
    """Is the stall `marker` still waiting in the loop (or in the iteration running now)?"""
    rows = [server.queue.view()]
    if server._inflight is not None:
        rows.append(server._inflight)
    return any(((part["conn"] == STALL_CONN) & (part["msg"] == marker)).any() for part in rows)


__all__ = ["Resharding"]
