"""Executing commands against the in-memory dataset: values, lists, TTLs, memory limits.

`Store.execute` applies a run of committed commands in execution order and returns each
command's reply status. Every change is also appended to the journal (the AOF order), so the
persistence layer can tell exactly which changes a crash or power loss took away. Key-value
commands are applied with numpy (last write per key wins); list and cache commands, whose
outcome depends on the one before (a pop finds the list empty or not, a GET hits or misses),
are applied one by one.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from models.redis import dataset as ds
from models.redis.commands import (
    BRPOP,
    CACHE_GET,
    CACHE_SET,
    GET,
    INCR,
    IS_DENY_OOM,
    IS_WRITE,
    LPUSH,
    PUBLISH,
    SET,
    XACK,
    XADD,
    XAUTOCLAIM,
    XREADGROUP,
)
from models.redis.memory import Memory

if TYPE_CHECKING:
    from models.redis.pubsub import PubSub
    from models.redis.requests import Rows
    from models.redis.server import RedisServer
    from models.redis.streams import StreamConsumers
    from models.redis.workers import Workers

# Reply status of a command (what the client sees).
(
    OK,
    MISS,
    ERR_LOADING,
    ERR_OOM,
    ERR_MISCONF,
    BLOCKED,
    ERR_REFUSED,
    ERR_RESET,
    NO_ANSWER,
    ERR_NOREPLICAS,
    ERR_READONLY,
    ERR_WAIT_SHORT,
    ERR_MASTERDOWN,
) = range(13)
ERROR_NAMES = (
    "OK",
    "nil",
    "LOADING",
    "OOM",
    "MISCONF",
    "blocked",
    "refused",
    "reset",
    "none",
    "NOREPLICAS",
    "READONLY",
    "WAIT<n",  # WAIT returned fewer replicas than asked: the write's fate is unknown
    "MASTERDOWN",  # a replica without its master and replica-serve-stale-data no
)
LIST_ITEM_BYTES = 24  # quicklist entry overhead per item


class Store:
    """The live dataset of one incarnation of the server and the journal of its changes."""

    def __init__(self, server: RedisServer):
        self.server = server
        self.ctx = server.ctx
        self.history = server.ctx.history
        config = server.config
        self.config = config
        self.workload = config.workload
        self.mode = {"kv": "incr" if config.ops.write_command == "INCR" else "kv"}.get(
            self.workload, self.workload
        )
        self.n_keys = server.ctx.spec.workload.keys
        self.ttl_ms = config.ops.ttl_s * 1000.0
        self.memory = Memory(config, self.n_keys, server.ctx.rng(f"{server.name}.eviction"))
        self.live = ds.empty_image(self.n_keys, config.dataset_keys)
        self._base = self.live.copy()
        self.journal = ds.Journal()
        self._scratch = np.full(self.n_keys, -1, dtype=np.int64)
        from models.redis.streams import StreamState

        self.stream = StreamState()  # workload "stream": the stream and its consumer group
        self.group_ms: dict[int, float] = {}  # journal position -> time of a delivery or claim
        if self.mode == "stream":
            self._base.extra["stream"] = StreamState()
        self.blocked: deque[int] = deque()  # BRPOP connections waiting, oldest first
        self.items: deque[int] = deque()  # list items (id << 1 | retry), oldest first
        self.misconf = False  # stop-writes-on-bgsave-error after a failed BGSAVE
        self.dirty = 0  # writes since the last successful save (save rules)
        self.keyspace_hits = 0
        self.keyspace_misses = 0
        self.expired_keys = 0
        self.evicted_keys = 0
        # journal end after each row of the last `execute` run one by one (None: one entry per
        # successful write, in order)
        self.row_ends: np.ndarray | None = None

    def _pubsub(self) -> PubSub:
        pubsub = self.server.model.pubsub
        assert pubsub is not None, "PUBLISH needs the pubsub workload"
        return pubsub

    def _streams(self) -> StreamConsumers:
        streams = self.server.model.stream_consumers
        assert streams is not None, "stream commands need the stream workload"
        return streams

    def _workers(self) -> Workers:
        workers = self.server.model.workers
        assert workers is not None, "BRPOP needs the list workload"
        return workers

    # --- state at a position -------------------------------------------------------------------
    def image(self) -> ds.Image:
        """A copy of the live dataset (what a fork hands to a BGSAVE child)."""
        img = self.live.copy()
        img.position = self.journal.end
        img.background_keys = self.memory.background_keys
        if self.mode == "list":
            img.items = np.fromiter(self.items, dtype=np.int64, count=len(self.items))
        if self.mode == "stream":
            img.extra["stream"] = self.stream.copy()
        return img

    def state_at(self, position: int) -> ds.Image:
        """The dataset as of journal `position` (>= the journal's base)."""
        base = self._base
        entries = self.journal.entries(base.position, position)
        if self.mode == "stream":
            # the stream and its group are rebuilt from the propagated commands (XADD, and the
            # XCLAIM / XACK that XREADGROUP, XAUTOCLAIM and XACK propagate)
            out = base.copy()
            out.position = base.position + int(entries.size)
            stream = base.extra["stream"]
            maxlen = self.config.ops.stream_maxlen
            out.extra["stream"] = stream.replayed(entries, base.position, maxlen, self.group_ms)
            return out
        expire = self._expire_of() if self.mode == "cache" else None
        return ds.replay(base, entries, self.mode, self.history.key, expire)

    def _expire_of(self) -> np.ndarray:
        return self.history.intended_ms + self.ttl_ms

    def load(self, image: ds.Image) -> None:
        """Make `image` the live dataset (restart); the journal restarts at its position."""
        self._base = image.copy()
        self.live = image.copy()
        self.journal = ds.Journal(image.position)
        self.memory.reset(image.background_keys)
        present = np.flatnonzero(self.live.value >= 0)
        if present.size:
            sizes = self._sizes_of(self.live.value[present])
            self.memory.set_values(present, sizes, np.zeros(present.size, dtype=bool))
        if self.mode == "stream":
            # the stream and group state of the image (an empty dataset has no stream)
            stream = image.extra.get("stream")
            self.stream = stream.copy() if stream is not None else type(self.stream)()
            self._base.extra["stream"] = self.stream.copy()
            self.group_ms = {}
        self.items = deque(int(x) for x in image.items)
        self.memory.list_bytes = len(self.items) * (self.server.model.value_bytes + LIST_ITEM_BYTES)
        self.blocked.clear()

    def fold(self, position: int) -> None:
        """Forget journal entries before `position`: no recovery can go back that far."""
        position = min(position, self.journal.end)
        replication = self.server.model.replication
        if replication is not None:
            position = min(position, replication.fold_floor(self.server))
        if position <= self.journal.base or self.mode in ("incr", "list", "stream"):
            return
        if self.mode == "kv":
            self._fold_writes(position)
        else:
            self._base = self.state_at(position)
        self.journal.drop_before(position)

    def _fold_writes(self, position: int) -> None:
        """`state_at(position)` made the base, in place, when the entries are all SETs.

        (what a key-value run journals between two folds; anything else is replayed). The base
        is private to the store: nothing else holds it, so it can be updated where it is.
        """
        base = self._base
        entries = self.journal.entries(base.position, position)
        if (entries & 3).any():  # a DEL (expiry, eviction) or a POP: the general replay
            self._base = self.state_at(position)
            return
        ids = entries >> 3
        keys = self.history.key[ids]
        last = self._last_occurrence(keys)
        base.value[keys[last]] = ids[last]
        base.position += int(entries.size)

    def _sizes_of(self, ids: np.ndarray) -> np.ndarray:
        return np.full(ids.size, self.server.model.value_bytes, dtype=np.int64)

    # --- execution -------------------------------------------------------------------------------
    def execute(
        self, rows: Rows, exec_ms: np.ndarray, end_ms: np.ndarray, loading: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Apply committed commands in order; (status, value id read or item popped) per row."""
        op = rows["op"]
        n = op.size
        self.row_ends = None
        status = np.zeros(n, dtype=np.int8)
        aux = np.full(n, -1, dtype=np.int64)
        if loading:
            # only PUBLISH runs while the dataset loads; everything else gets -LOADING
            status[:] = ERR_LOADING
            pubs = op == PUBLISH
            if pubs.any():
                status[pubs] = OK
                self._pubsub().publish(rows["msg"][pubs], end_ms[pubs], rows["nbytes"][pubs])
            return status, aux
        if self.misconf:
            status[IS_WRITE[op]] = ERR_MISCONF
        replication = self.server.model.replication
        if replication is not None:
            refusal = replication.write_refusal(self.server, float(exec_ms[0]))
            if refusal:
                status[IS_WRITE[op] & (status == OK)] = refusal
        if self.mode in ("list", "cache", "stream") or self._limited(rows):
            self._execute_one_by_one(rows, exec_ms, end_ms, status, aux)
            return status, aux
        ok = status == OK
        sets = ((op == SET) | (op == CACHE_SET)) & ok
        if sets.all():  # a run of plain writes (the common case): no selection to copy
            self._apply_sets(rows["msg"], rows["key"], rows["nbytes"], rows["attempt"], exec_ms)
            return status, aux
        if sets.any():
            self._apply_sets(
                rows["msg"][sets],
                rows["key"][sets],
                rows["nbytes"][sets],
                rows["attempt"][sets],
                exec_ms[sets],
            )
        incrs = (op == INCR) & ok
        if incrs.any():
            ids, retry = rows["msg"][incrs], rows["attempt"][incrs] > 0
            self.live.applied = np.concatenate([self.live.applied, (ids << 1) | retry])
            self.journal.append(ds.encode(ids, ds.WRITE, retry))
            self.dirty += int(ids.size)
        gets = op == GET
        if gets.any():
            self.memory.touch(rows["key"][gets], float(exec_ms[-1]))
        pubs = (op == PUBLISH) & ok
        if pubs.any():
            self._pubsub().publish(rows["msg"][pubs], end_ms[pubs], rows["nbytes"][pubs])
        return status, aux

    def _last_occurrence(self, keys: np.ndarray) -> np.ndarray:
        """Positions of the last write of each distinct key ("last write wins"), in O(n)."""
        scratch = self._scratch
        positions = np.arange(keys.size)
        np.maximum.at(scratch, keys, positions)
        last = np.flatnonzero(scratch[keys] == positions)
        scratch[keys] = -1
        return last

    def _limited(self, rows: Rows) -> bool:
        """Near maxmemory, writes must be checked one by one (OOM or eviction)."""
        memory = self.memory
        if not memory.limited:
            return False
        growth = rows["nbytes"][IS_DENY_OOM[rows["op"]]].sum() + memory.overhead * rows["op"].size
        return memory.used + growth > memory.maxmemory

    def _apply_sets(
        self,
        ids: np.ndarray,
        keys: np.ndarray,
        nbytes: np.ndarray,
        attempt: np.ndarray,
        exec_ms: np.ndarray,
    ) -> None:
        live = self.live
        last_pos = self._last_occurrence(keys)
        uniq = keys[last_pos]
        last_ids = ids[last_pos]
        present = live.value[uniq] >= 0
        self.memory.set_values(uniq, nbytes[last_pos].astype(np.int64), present)
        live.value[uniq] = last_ids
        if self.mode == "cache":
            live.expire_at[uniq] = exec_ms[last_pos] + self.ttl_ms
        self.memory.touch(uniq, float(exec_ms[-1]))
        retry = attempt > 0
        self.journal.append(ds.encode(ids, ds.WRITE, retry if retry.any() else None))
        self.dirty += int(ids.size)

    def _execute_one_by_one(
        self,
        rows: Rows,
        exec_ms: np.ndarray,
        end_ms: np.ndarray,
        status: np.ndarray,
        aux: np.ndarray,
    ) -> None:
        op_l = rows["op"].tolist()
        msg_l = rows["msg"].tolist()
        key_l = rows["key"].tolist()
        size_l = rows["nbytes"].tolist()
        att_l = rows["attempt"].tolist()
        conn_l = rows["conn"].tolist()
        x_l = exec_ms.tolist()
        memory = self.memory
        journal_out: list[int] = []
        starts: list[int] = []  # journal entries before each row (for the replication stream)
        live = self.live
        for i, op in enumerate(op_l):
            starts.append(len(journal_out))
            if status[i] != OK:
                continue
            x = x_l[i]
            if IS_DENY_OOM[op] and memory.over_limit() and not self._evict_for(x, journal_out):
                status[i] = ERR_OOM
                continue
            if op in (SET, CACHE_SET):
                key, mid = key_l[i], msg_l[i]
                memory.set_value(key, size_l[i], live.value[key] >= 0)
                live.value[key] = mid
                if op == CACHE_SET:
                    live.expire_at[key] = x + self.ttl_ms
                memory.touch_one(key, x)
                journal_out.append((mid << 3) | ((att_l[i] > 0) << 2) | ds.WRITE)
                self.dirty += 1
            elif op in (CACHE_GET, GET):
                key = key_l[i]
                value = int(live.value[key])
                if value >= 0 and live.expire_at[key] <= x:
                    self._expire_key(key, x, journal_out)  # lazy expiry on access
                    value = -1
                if value >= 0:
                    aux[i] = value
                    self.keyspace_hits += 1
                    memory.touch_one(key, x)
                else:
                    status[i] = MISS
                    self.keyspace_misses += 1
            elif op == INCR:
                mid = msg_l[i]
                entry = (mid << 1) | (att_l[i] > 0)
                live.applied = np.append(live.applied, entry)
                journal_out.append((mid << 3) | ((att_l[i] > 0) << 2) | ds.WRITE)
                self.dirty += 1
            elif op == LPUSH:
                item = (msg_l[i] << 1) | (att_l[i] > 0)
                journal_out.append((msg_l[i] << 3) | ((att_l[i] > 0) << 2) | ds.WRITE)
                self.dirty += 1
                if self.blocked:
                    # handleClientsBlockedOnKeys: the oldest blocked BRPOP takes it at once
                    journal_out.append((msg_l[i] << 3) | ((att_l[i] > 0) << 2) | ds.POP)
                    worker = self.blocked.popleft()
                    self._workers().served(worker, item, float(end_ms[i]), server=self.server.name)
                else:
                    self.items.append(item)
                    memory.list_bytes += size_l[i] + LIST_ITEM_BYTES
            elif op == BRPOP:
                if self.items:
                    item = self.items.popleft()
                    memory.list_bytes -= self.server.model.value_bytes + LIST_ITEM_BYTES
                    journal_out.append(((item >> 1) << 3) | ((item & 1) << 2) | ds.POP)
                    self.dirty += 1
                    aux[i] = item
                else:
                    status[i] = BLOCKED
                    self.blocked.append(conn_l[i])
            elif op == PUBLISH:
                self._pubsub().publish(
                    np.array([msg_l[i]]), np.array([end_ms[i]]), np.array([size_l[i]])
                )
            elif op in (XADD, XREADGROUP, XACK, XAUTOCLAIM):
                leave = float(end_ms[i])  # the reply leaves at the end of the iteration
                self._stream_command(op, i, rows, x, leave, status, aux, journal_out)
        base = self.journal.end
        self.row_ends = base + np.array([*starts[1:], len(journal_out)], dtype=np.int64)
        if journal_out:
            self.journal.append(np.array(journal_out, dtype=np.int64))

    def _stream_command(
        self,
        op: int,
        i: int,
        rows: Rows,
        x: float,
        reply_at: float,
        status: np.ndarray,
        aux: np.ndarray,
        journal_out: list[int],
    ) -> None:
        """XADD / XREADGROUP / XACK / XAUTOCLAIM on the stream and its group."""
        stream = self.stream
        consumers = self._streams()
        conn = int(rows["conn"][i])
        server = self.server.name
        group_from = len(journal_out)
        if op == XADD:
            mid, retry = int(rows["msg"][i]), int(rows["attempt"][i] > 0)
            stream.add((mid << 1) | retry, self.journal.end + len(journal_out))
            journal_out.append((mid << 3) | (retry << 2) | ds.WRITE)
            self.dirty += 1
            unread = stream.trim(consumers.maxlen)
            if unread:
                consumers.lose_trimmed(unread, x)
            group_from = len(journal_out)
            if stream.blocked and stream.last_delivered < stream.next_seq:
                # a consumer blocked in XREADGROUP is served by this XADD at once
                waiter = stream.blocked.popleft()
                batch = stream.read_group(waiter, consumers.count, x, journal_out)
                consumers.served(waiter, batch, reply_at, claimed=False, server=server)
        elif op == XREADGROUP:
            batch = stream.read_group(conn, consumers.count, x, journal_out)
            if batch:
                aux[i] = -2
                consumers.served(conn, batch, reply_at, claimed=False, server=server)
            else:
                status[i] = BLOCKED
                stream.blocked.append(conn)
        elif op == XACK:
            acked = consumers.xacks.pop(int(rows["key"][i]), [])
            self.dirty += stream.ack(acked, journal_out)
        else:
            min_idle = consumers.min_idle_ms
            batch, deleted = stream.claim(conn, min_idle, consumers.count, x, journal_out)
            if deleted:
                consumers.lose_trimmed(deleted, x)
            if batch:
                consumers.served(conn, batch, reply_at, claimed=True, server=server)
        if len(journal_out) > group_from and op != XACK:
            # deliveries and claims carry their time (XCLAIM ... TIME) to replicas and the AOF
            end = self.journal.end
            self.dirty += len(journal_out) - group_from
            for j in range(group_from, len(journal_out)):
                self.group_ms[end + j] = x

    # --- expiry and eviction ---------------------------------------------------------------------
    def _expire_key(self, key: int, t_ms: float, journal_out: list[int]) -> None:
        value = int(self.live.value[key])
        self.history.supersede(value, "expired", t_ms)
        self.live.value[key] = -1
        self.live.expire_at[key] = np.inf
        self.memory.delete_one(key)
        journal_out.append((key << 3) | ds.DEL)  # expires propagate as DEL to the AOF
        self.expired_keys += 1

    def active_expire(self, t_ms: float) -> int:
        """serverCron's active expire cycle: delete keys whose TTL passed (returns how many)."""
        live = self.live
        due = np.flatnonzero((live.value >= 0) & (live.expire_at <= t_ms))
        if due.size == 0:
            return 0
        self.history.supersede(live.value[due], "expired", t_ms)
        live.value[due] = -1
        live.expire_at[due] = np.inf
        self.memory.delete(due)
        self.journal.append(ds.encode(due, ds.DEL))
        self.expired_keys += int(due.size)
        return int(due.size)

    def _evict_for(self, t_ms: float, journal_out: list[int]) -> bool:
        """performEvictions: evict until under maxmemory; False if that is impossible (OOM)."""
        memory = self.memory
        if memory.policy == "noeviction":
            return False
        live = self.live
        while memory.over_limit():
            victim = memory.pick_victim(live.value, live.expire_at, t_ms)
            if victim is None:
                return False
            if victim < 0:
                memory.background_keys -= 1
            else:
                self.history.supersede(int(live.value[victim]), "evicted", t_ms)
                live.value[victim] = -1
                live.expire_at[victim] = np.inf
                memory.delete_one(victim)
                journal_out.append((victim << 3) | ds.DEL)  # evictions propagate as DEL
            self.evicted_keys += 1
        return True
