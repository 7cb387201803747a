"""Reads served by replicas, and how stale each one was ("Replication" docs: read-only replicas,
`replica-serve-stale-data`).

With `client.read_from = "replicas"` each GET goes to a replica picked at random (as a client
library's ReadFrom REPLICA does); with "master" to the master. A replica answers from its
dataset: the master's journal up to the replica's offset when the GET runs. Its link to the
master being down (a cut, a full resync in progress) does not stop it: with
`replica-serve-stale-data yes` (the default) it answers with the data it has, however old; with
`no` it answers `-MASTERDOWN`. A replica resumed from a pause runs the reads that waited through
it first, beside the first chunk of the replication stream that waited too: they see the data
of the pause's start; later reads see the backlog applied at the replica's command speed.

Each read is judged against what the client world already knew when it was sent: it is
**stale** if some write of the same key was acknowledged before the read was sent and is newer
than the value returned; `versions` counts those writes, and `staleness_ms` is the read's send
time minus the acknowledgement of the oldest of them (how long the value had been outdated).
A read from the master is never stale unless a failover or a restart lost acknowledged writes.

The value each read returned is found when the servers have been committed up to its execution
(`evaluate`, from `RedisModel.settle`): the dataset at the replica's offset is the master's
journal applied to `values`, a copy of the dataset kept at the lowest offset a read can still
ask for (`cursor`; the master's journal is not folded past it). The staleness itself is computed
at the end of the run, when every acknowledgement is known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from models.redis import dataset as ds
from models.redis.commands import GET
from models.redis.replies import WORKER_BASE
from models.redis.store import ERR_MASTERDOWN, MISS, OK
from simulator import history as hist

if TYPE_CHECKING:
    from models.redis.replication import Replication
    from models.redis.requests import Rows
    from models.redis.server import RedisServer


def deleted(order: np.ndarray) -> np.ndarray:
    """What a read finds for a key deleted (evicted, expired) before the write of execution
    order `order` ran: -2 - order (-1 stays "never written", message ids are >= 0)."""
    return -2 - order


def deleted_at(value: np.ndarray) -> np.ndarray:
    """The order `deleted` encoded in each value < -1, else 0 (older than every write)."""
    return np.where(value <= -2, -2 - value, 0)


class ReplicaReads:
    """The GETs of the kv workload: where they went, what they returned, how stale it was."""

    def __init__(self, replication: Replication):
        self.replication = replication
        self.model = replication.model
        self.history = replication.ctx.history
        self.serve_stale = replication.config.replica_serve_stale_data
        store = replication.master.store
        self.cursor = store.journal.end
        self.values = store.live.value.copy()
        # reads executed, not evaluated yet: (server, keys, sent, arrived, executed)
        self._pending: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        # evaluated reads: key, send time, value returned (message id, -1: none), by a replica?
        self._keys: list[np.ndarray] = []
        self._sent: list[np.ndarray] = []
        self._value: list[np.ndarray] = []
        self._replica: list[np.ndarray] = []
        self.errors = 0
        # a replica resumed from a pause: (when, its offset then). The reads that waited in
        # its socket run in its first iterations, beside the first chunk of the replication
        # stream that waited too: they see the data of the pause's start. The rest of the
        # backlog is applied within milliseconds (~1 us a SET), as `link.offset` assumes.
        self._resumed: dict[str, tuple[float, int]] = {}
        # execution order of every write the cursor passed (-1: never reached every replica)
        self.order = np.full(0, -1, dtype=np.int64)
        self._next_order = 0

    # --- the servers' side -------------------------------------------------------------------
    def served(
        self, server: RedisServer, rows: Rows, end_row: np.ndarray, status: np.ndarray
    ) -> np.ndarray:
        """GETs executed by `server` (iterations ending at `end_row`): recorded; a replica
        without its master answers -MASTERDOWN if replica-serve-stale-data is no."""
        # a nil answer is a read too: of a key evicted, expired, or missed by a stale replica
        answered = (status == OK) | (status == MISS)
        gets = (rows["op"] == GET) & (rows["conn"] < WORKER_BASE) & answered
        if not gets.any():
            return status
        replication = self.replication
        if server is not replication.master and not self.serve_stale:
            link = replication.links.get(server.name)
            if link is None or not self._in_sync(link):
                status = status.copy()
                status[gets] = ERR_MASTERDOWN
                self.errors += int(gets.sum())
                return status
        self._pending.append(
            (
                server.name,
                rows["key"][gets],
                rows["send"][gets],
                rows["arrival"][gets],
                end_row[gets],
            )
        )
        return status

    def _in_sync(self, link: Any) -> bool:
        """Connected to the current master and not in a full resync."""
        return bool(
            link.connected
            and link.epoch == self.replication.epoch
            and link.syncing_until == -np.inf
        )

    def floor(self) -> int:
        """The master's journal must keep what the reads still to come may need."""
        return self.cursor

    # --- evaluation ----------------------------------------------------------------------------
    def evaluate(self) -> None:
        """The value each pending read returned (every server committed up to now)."""
        if not self._pending:
            self._advance_cursor()
            return
        replication = self.replication
        master = replication.master
        names = [name for name, *_ in self._pending]
        keys = np.concatenate([p[1] for p in self._pending])
        sent = np.concatenate([p[2] for p in self._pending])
        by_replica = np.repeat(
            np.array([name != master.name for name in names]), [p[1].size for p in self._pending]
        )
        positions = np.empty(keys.size, dtype=np.int64)
        start = 0
        for name, part_keys, _sent, part_arrival, part_exec in self._pending:
            end = start + part_keys.size
            positions[start:end] = self._positions(name, part_arrival, part_exec)
            start = end
        self._pending = []
        position_end = replication.position()
        positions = np.clip(positions, self.cursor, position_end)
        self._keys.append(keys)
        self._sent.append(sent)
        self._value.append(self._values_at(keys, positions))
        self._replica.append(by_replica)
        self._advance_cursor()

    def _positions(self, name: str, arrived: np.ndarray, executed: np.ndarray) -> np.ndarray:
        """The master journal position each read saw on server `name`."""
        replication = self.replication
        if name == replication.master.name:
            return replication.sent_by_many(executed)
        link = replication.links.get(name)
        if link is None:
            return np.full(executed.size, self.cursor, dtype=np.int64)
        if not self._in_sync(link):
            return np.full(executed.size, link.offset, dtype=np.int64)  # what it has: stale
        # what the master had sent one (mean) link delay before the read ran
        net = replication.net.link(replication.master.name, name)
        seen = replication.sent_by_many(executed - (net.base_ms + net.extra_delay_ms))
        seen = np.maximum(seen, link.offset)
        if not np.isnan(link.cut_noted):
            # behind a silent cut (shorter than repl-timeout) the link stays up, the stream
            # does not flow: reads see what the replica had when the cut began
            inside = (executed >= link.cut_noted) & (executed < link.cut_healed)
            seen = np.where(inside, np.minimum(seen, link.cut_offset), seen)
        resumed = self._resumed.get(name)
        if resumed is not None:
            at, offset = resumed
            seen = np.where(arrived <= at, np.minimum(seen, offset), seen)
        return seen

    def resumed(self, server: RedisServer) -> None:
        """A paused replica runs again, `link.offset` behind (its link did not advance)."""
        link = self.replication.links.get(server.name)
        if link is not None:
            self._resumed[server.name] = (float(server.env.now), int(link.offset))

    def _values_at(self, keys: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The value of key k at master journal position p, for each (k, p) (p >= cursor)."""
        out = self.values[keys].copy()
        top = int(positions.max(initial=self.cursor))
        if top <= self.cursor:
            return out
        store = self.replication.master.store
        entries = store.journal.entries(self.cursor, top)
        value, kind, _retry = ds.decode(entries)
        touched = (kind == ds.WRITE) | (kind == ds.DEL)
        if not touched.any():
            return out
        at = np.flatnonzero(touched)
        ids = self._entry_values(value, kind == ds.WRITE)[at]
        entry_keys = self._entry_keys(value[at], kind[at] == ds.WRITE)
        # the last change of key k before position p: search (k, p) among (key, position) pairs
        span = np.int64(top - self.cursor + 1)
        order = np.lexsort((at, entry_keys))
        pairs = entry_keys[order].astype(np.int64) * span + at[order]
        query = keys.astype(np.int64) * span + (positions - self.cursor)
        i = np.searchsorted(pairs, query, side="left") - 1
        found = i >= 0
        found[found] = entry_keys[order][i[found]] == keys[found]
        out[found] = ids[order][i[found]]
        return out

    def _advance_cursor(self) -> None:
        """Move `values` to the lowest offset a read still to be evaluated can see."""
        replication = self.replication
        lowest = [replication.position()]
        for name, link in replication.links.items():
            if link.epoch != replication.epoch:
                continue
            lowest.append(link.offset)
            # reads the replica has not run yet run after its loop's last committed iteration
            net = replication.net.link(replication.master.name, name)
            lowest.append(replication.sent_by(link.server.free_ms - net.base_ms))
            resumed = self._resumed.get(name)
            if resumed is not None:
                if link.server.queue.count_before(resumed[0], inclusive=True):
                    lowest.append(resumed[1])  # reads that waited through its pause
                else:
                    del self._resumed[name]  # they have all run
        target = min(lowest)
        if target <= self.cursor:
            return
        entries = replication.master.store.journal.entries(self.cursor, target)
        value, kind, _retry = ds.decode(entries)
        writes = kind == ds.WRITE
        touched = writes | (kind == ds.DEL)
        uniq, last = ds.last_per_key(
            self._entry_keys(value, writes)[touched], self._entry_values(value, writes)[touched]
        )
        self.values[uniq] = last
        self.cursor = target
        self._assign_order(value[writes])

    def _entry_keys(self, value: np.ndarray, writes: np.ndarray) -> np.ndarray:
        """The key of each journal entry: a WRITE carries a message id (the message's key), a
        DEL the key itself."""
        keys = value.copy()
        keys[writes] = self.history.key[keys[writes]]
        return keys

    def _entry_values(self, value: np.ndarray, writes: np.ndarray) -> np.ndarray:
        """What a read of the entry's key finds after it, for journal entries from the cursor
        on: a WRITE's message id, or for a DEL (an eviction, an expiry) `deleted(o)`, with o the
        execution order the next write will get (the writes before it are older)."""
        before = np.cumsum(writes) - writes  # writes earlier in these entries
        return np.where(writes, value, deleted(self._next_order + before))

    def _assign_order(self, ids: np.ndarray) -> None:
        """The writes `ids` ran in this order, after every write ordered before."""
        if not ids.size:
            return
        need = int(ids.max()) + 1
        if need > self.order.size:
            grown = np.full(max(need, 2 * self.order.size), -1, dtype=np.int64)
            grown[: self.order.size] = self.order
            self.order = grown
        self.order[ids] = self._next_order + np.arange(ids.size)
        self._next_order += int(ids.size)

    def retire(self) -> None:
        """The master's journal is about to go (failover, restart, end of the run): order the
        writes the cursor has not passed (a failover discards some: they stay newer than
        everything before them and older than what the new master runs)."""
        store = self.replication.master.store
        value, kind, _retry = ds.decode(store.journal.entries(self.cursor, store.journal.end))
        self._assign_order(value[kind == ds.WRITE])

    def reset(self) -> None:
        """A failover or a master restart (pending reads evaluated before): a new journal;
        reads continue from the new master's dataset."""
        self._pending = []
        store = self.replication.master.store
        self.cursor = store.journal.end
        self.values = store.live.value.copy()

    # --- results ------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Stale reads: count, share, versions behind, staleness percentiles (ms)."""
        if not self._keys:
            return {"reads": 0, "read_errors": self.errors}
        keys = np.concatenate(self._keys)
        sent = np.concatenate(self._sent)
        value = np.concatenate(self._value)
        replica = np.concatenate(self._replica)
        versions, staleness = self._staleness(keys, sent, value)
        stale = versions > 0
        out: dict[str, Any] = {
            "reads": int(keys.size),
            "replica_reads": int(replica.sum()),
            "read_errors": self.errors,
            "stale_reads": int(stale.sum()),
            "stale_read_share": round(float(stale.mean()), 6),
            "stale_reads_from_master": int((stale & ~replica).sum()),
            "stale_read_versions_max": int(versions.max(initial=0)),
            "read_staleness_ms_p99": round(float(np.percentile(staleness, 99)), 3),
            "stale_read_staleness_ms_p50": None,
            "stale_read_staleness_ms_p99": None,
        }
        if stale.any():
            out["stale_read_staleness_ms_p50"] = round(float(np.median(staleness[stale])), 3)
            out["stale_read_staleness_ms_p99"] = round(
                float(np.percentile(staleness[stale], 99)), 3
            )
        return out

    def _staleness(
        self, keys: np.ndarray, sent: np.ndarray, value: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per read: acknowledged writes of its key newer than its value (in execution order on
        the master), up to the newest one acknowledged before the read was sent, and for how
        long (ms) the first of them had been acknowledged."""
        history = self.history
        acked = np.flatnonzero(history.status == hist.ACKED)
        order = np.full(history.n, -1, dtype=np.int64)
        known = min(self.order.size, history.n)
        order[:known] = self.order[:known]
        acked = acked[order[acked] >= 0]  # writes that never reached every replica: unordered
        ack_ms = history.ack_ms[acked].astype(np.float64)
        write_keys = history.key[acked].astype(np.int64)
        write_order = order[acked]
        key64 = keys.astype(np.int64)
        span = np.int64(max(self._next_order, 1) + 1)
        # a value deleted at order o (eviction, expiry) is newer than the writes before o
        value_order = np.where(value >= 0, order[np.maximum(value, 0)], deleted_at(value) - 1)
        # a value no replica ever had (the cursor never passed it) is the newest there was
        value_order[(value >= 0) & (value_order < 0)] = np.iinfo(np.int64).max // 2
        # newest write of the key acknowledged by the read's send time: sorted by (key, ack
        # time), a running max of key * span + order stays inside each key's run
        _, rank = np.unique(np.concatenate([ack_ms, sent]), return_inverse=True)
        ranks = np.int64(rank.max(initial=0) + 2)
        ack_rank, sent_rank = rank[: ack_ms.size], rank[ack_ms.size :]
        by_ack = np.lexsort((ack_ms, write_keys))
        sorted_keys = write_keys[by_ack]
        running = np.maximum.accumulate(sorted_keys * span + write_order[by_ack])
        first = np.searchsorted(sorted_keys, key64, side="left")
        pairs = sorted_keys * ranks + ack_rank[by_ack]
        j = np.searchsorted(pairs, key64 * ranks + sent_rank, side="right")
        found = j > first
        newest = np.full(keys.size, -1, dtype=np.int64)
        newest[found] = running[j[found] - 1] - key64[found] * span
        versions = np.zeros(keys.size, dtype=np.int64)
        staleness = np.zeros(keys.size)
        stale = newest > value_order
        if not stale.any():
            return versions, staleness
        # acknowledged writes of the key in (value, newest] (execution order), and the first
        by_order = np.lexsort((write_order, write_keys))
        pairs = write_keys[by_order] * span + write_order[by_order]
        lo = np.searchsorted(pairs, key64 * span + value_order, side="right")
        hi = np.searchsorted(pairs, key64 * span + newest, side="right")
        versions[stale] = (hi - lo)[stale]
        oldest = ack_ms[by_order][np.minimum(lo, pairs.size - 1)]
        newest_ack = ack_ms[by_order][np.maximum(hi - 1, 0)]
        oldest = np.where(oldest <= sent, oldest, newest_ack)
        staleness[stale] = (sent - oldest)[stale]
        return versions, staleness
