"""Streams with a consumer group ("Redis Streams" docs; XADD, XREADGROUP, XACK, XAUTOCLAIM).

Producers `XADD stream [MAXLEN ~ n] * ...`. One consumer group; each consumer loops:
`XREADGROUP GROUP g <me> COUNT k BLOCK 0 STREAMS stream >` (new entries, never delivered to the
group: they enter the pending entries list, PEL, owned by this consumer), processes the batch
one entry after the other (`processing_ms` each), then `XACK`s the whole batch and reads again.
Every `xautoclaim_every_ms` each consumer runs `XAUTOCLAIM ... min-idle-time` and processes what
it claimed (delivery count + 1).

A consumer that crashes leaves its entries in the PEL: the ones it had processed but not
acknowledged are claimed by another consumer and processed again (duplicates, cause
`claimed_pending_entry`); none is lost (at-least-once). `MAXLEN ~` trims whole nodes
(stream-node-max-entries 100) from the head: an entry trimmed before the group read it is lost
(`trimmed_before_read`). Several consumers process in parallel: there is no per-key order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from models.redis import dataset as ds
from models.redis.commands import XACK, XAUTOCLAIM, XREADGROUP
from models.redis.consumer_process import ConsumerProcess
from models.redis.replies import WORKER_BASE
from models.redis.requests import Rows
from models.redis.store import (
    ERR_LOADING,
    ERR_NOREPLICAS,
    ERR_READONLY,
    ERR_REFUSED,
    ERR_RESET,
    NO_ANSWER,
)

if TYPE_CHECKING:
    from models.redis.model import RedisModel

NODE_MAX_ENTRIES = 100  # stream-node-max-entries: MAXLEN ~ trims whole nodes


# Group changes in the journal (kind GROUP): what Redis 7 propagates to replicas and the AOF
# for XREADGROUP (an XCLAIM per delivered entry, with its delivery TIME, plus the group's
# last-delivered id), XAUTOCLAIM (XCLAIM) and XACK, one entry per stream entry touched.
DELIVER, CLAIM, ACK, DELETE = range(4)
# how a consumer got an entry: XREADGROUP > handing it out for the first time, XAUTOCLAIM, or
# XREADGROUP > handing it out again (the group forgot the delivery: restart, failover)
FIRST_READ, CLAIMED, READ_AGAIN = range(3)
_SUB_BITS, _CONSUMER_BITS = 2, 14


def group_entry(sub: int, seq: int, conn: int) -> int:
    """The journal entry of one group change (`conn` a consumer's connection id)."""
    value = (seq << (_SUB_BITS + _CONSUMER_BITS)) | ((conn - WORKER_BASE) << _SUB_BITS) | sub
    return (value << 3) | ds.GROUP


class StreamState:
    """One stream and its consumer group, inside the server's dataset."""

    def __init__(self) -> None:
        self.entries: deque[tuple[int, int]] = deque()  # (item = id << 1 | retry, journal pos)
        self.first_seq = 0  # sequence number of entries[0] (the entry id's order)
        self.last_delivered = 0  # the group's last-delivered-id: next entry ">" returns
        self.pel: dict[int, list[Any]] = {}  # seq -> [item, conn, delivery count, delivered ms]
        self.blocked: deque[int] = deque()  # consumers blocked in XREADGROUP, oldest first
        self.trimmed = 0

    @property
    def next_seq(self) -> int:
        return self.first_seq + len(self.entries)

    def copy(self) -> StreamState:
        """The persisted part (entries, group, PEL); blocked clients are connections, not data."""
        out = StreamState()
        out.entries = deque(self.entries)
        out.first_seq = self.first_seq
        out.last_delivered = self.last_delivered
        out.pel = {seq: list(entry) for seq, entry in self.pel.items()}
        out.trimmed = self.trimmed
        return out

    def add(self, item: int, position: int) -> None:
        self.entries.append((item, position))

    def trim(self, maxlen: int) -> list[int]:
        """MAXLEN ~: drop whole nodes from the head; returns the items never delivered."""
        excess = len(self.entries) - maxlen
        if maxlen <= 0 or excess < NODE_MAX_ENTRIES:
            return []
        drop = (excess // NODE_MAX_ENTRIES) * NODE_MAX_ENTRIES
        unread = []
        for _ in range(drop):
            item, _pos = self.entries.popleft()
            if self.first_seq >= self.last_delivered:
                unread.append(item)
            self.first_seq += 1
        self.last_delivered = max(self.last_delivered, self.first_seq)
        self.trimmed += drop
        return unread

    def read_group(
        self, conn: int, count: int, t_ms: float, journal: list[int] | None = None
    ) -> list[tuple[int, int]]:
        """XREADGROUP >: up to `count` new entries, now pending for `conn`."""
        start = self.last_delivered
        end = min(self.next_seq, start + count)
        batch = []
        for seq in range(start, end):
            item = self.entries[seq - self.first_seq][0]
            self.pel[seq] = [item, conn, 1, t_ms]
            batch.append((seq, item))
            if journal is not None:
                journal.append(group_entry(DELIVER, seq, conn))
        self.last_delivered = end
        return batch

    def claim(
        self,
        conn: int,
        min_idle_ms: float,
        count: int,
        t_ms: float,
        journal: list[int] | None = None,
    ) -> tuple[list[tuple[int, int]], list[int]]:
        """XAUTOCLAIM: (claimed entries, items of pending entries trimmed meanwhile)."""
        claimed: list[tuple[int, int]] = []
        deleted: list[int] = []
        for seq in sorted(self.pel):
            if len(claimed) >= count:
                break
            entry = self.pel[seq]
            if t_ms - entry[3] < min_idle_ms:
                continue
            if seq < self.first_seq:  # XAUTOCLAIM returns it as deleted and drops it
                deleted.append(entry[0])
                del self.pel[seq]
                if journal is not None:
                    journal.append(group_entry(DELETE, seq, conn))
                continue
            entry[1], entry[2], entry[3] = conn, entry[2] + 1, t_ms
            claimed.append((seq, entry[0]))
            if journal is not None:
                journal.append(group_entry(CLAIM, seq, conn))
        return claimed, deleted

    def ack(self, acked: list[tuple[int, int]], journal: list[int] | None = None) -> int:
        """XACK: drop the entries from the PEL. An id is (seq, item): an entry of another
        incarnation of the stream with the same sequence number is not the one acknowledged (in
        Redis the ids are times, so they never collide)."""
        done = 0
        for seq, item in acked:
            entry = self.pel.get(seq)
            if entry is not None and entry[0] == item:
                del self.pel[seq]
                done += 1
                if journal is not None:
                    journal.append(group_entry(ACK, seq, entry[1]))
        return done

    def replayed(
        self, entries: np.ndarray, position: int, maxlen: int, times: dict[int, float]
    ) -> StreamState:
        """A copy after applying journal `entries` (starting at journal `position`): what a
        replica or a restart rebuilds from the replication stream or the AOF. `times`: the
        delivery time of each DELIVER/CLAIM entry by position (XCLAIM ... TIME in Redis)."""
        out = self.copy()
        value, kind, retry = ds.decode(entries)
        for i, (val, k, again) in enumerate(
            zip(value.tolist(), kind.tolist(), retry.tolist(), strict=True)
        ):
            if k == ds.WRITE:
                out.add((val << 1) | int(again), position + i)
                out.trim(maxlen)
                continue
            if k != ds.GROUP:
                continue
            sub = val & 3
            conn = WORKER_BASE + ((val >> _SUB_BITS) & ((1 << _CONSUMER_BITS) - 1))
            seq = val >> (_SUB_BITS + _CONSUMER_BITS)
            if sub == DELIVER:
                item = out.entries[seq - out.first_seq][0]
                out.pel[seq] = [item, conn, 1, times.get(position + i, 0.0)]
                out.last_delivered = max(out.last_delivered, seq + 1)
            elif sub == CLAIM:
                entry = out.pel.get(seq)
                if entry is not None:
                    entry[1], entry[2] = conn, entry[2] + 1
                    entry[3] = times.get(position + i, entry[3])
            else:  # ACK, DELETE
                out.pel.pop(seq, None)
        return out

    def backlog(self) -> int:
        return self.next_seq - self.last_delivered + len(self.pel)

    @property
    def groups(self) -> dict[str, GroupView]:
        """The consumer group as the invariant checker reads it (XINFO GROUPS, XPENDING)."""
        return {"group": GroupView(self.pel, self.last_delivered - 1)}


class GroupView(NamedTuple):
    pel: dict[int, list[Any]]
    last_delivered_id: int  # the highest sequence number delivered to the group


class ConsumerNode(ConsumerProcess):
    """A stream consumer process."""

    def __init__(self, consumers: StreamConsumers, index: int):
        super().__init__(consumers, index)
        self.consumers = consumers

    def on_restart(self) -> None:
        self.consumers.connect(self.index, self.env.now)
        self.spawn(self.consumers.claimer(self.index))

    def on_resume(self) -> None:
        self.consumers.resumed(self.index)


class StreamConsumers:
    """The consumers of the group: what they read, process, acknowledge and claim."""

    def __init__(self, model: RedisModel, count: int):
        self.model = model
        self.ctx = model.ctx
        self.env = model.env
        self.history = model.ctx.history
        assert model.ctx.network is not None
        self.net = model.ctx.network
        ops = model.config.ops
        self.count = ops.xreadgroup_count
        self.min_idle_ms = ops.xautoclaim_min_idle_ms
        self.claim_every_ms = ops.xautoclaim_every_ms
        self.maxlen = ops.stream_maxlen
        self.processing_ms = model.ctx.spec.workload.processing_ms
        self.nodes = [ConsumerNode(self, i) for i in range(count)]
        # entries received and not processed yet: (item, done_ms, how), per consumer
        self.pending: list[list[tuple[int, float, int]]] = [[] for _ in range(count)]
        # by message id, bits of its entry (and of a retried XADD's twin, `retry` x 2): handed out
        # by XREADGROUP > (1), by XAUTOCLAIM (2) at least once; for the duplicate causes
        self._handed = np.zeros(0, dtype=np.uint8)
        self.busy_until = np.full(count, -np.inf)
        self._token = 0
        # XACK arguments by request token: (seq, item) ids the consumer acknowledges
        self.xacks: dict[int, list[tuple[int, int]]] = {}
        self.claimed_entries = 0
        # replies that reached a paused (SIGSTOP) consumer: they wait in its socket until it
        # runs again, (batch, hows, received_ms, claimed) per consumer; and whether a reply it
        # must answer by reading again (an error, a reset connection) is among them
        self.parked: list[list[tuple[list[tuple[int, int]], list[int], float, bool]]] = [
            [] for _ in range(count)
        ]
        self.read_on_resume = [False] * count
        # items a consumer holds whose entry left the stream and the PEL meanwhile (trimmed,
        # or reported deleted by XAUTOCLAIM): nobody else can get them any more
        self.orphans: set[int] = set()
        # why an entry delivered again by XREADGROUP > came back: the last reset of the group
        # state that forgot deliveries (a restart from an older AOF/RDB, or a failover)
        self.redelivery_cause = "redelivered_after_restart"

    @property
    def min_cycle_ms(self) -> float:
        slow = min((n.slowdown for n in self.nodes), default=1.0)
        return self.processing_ms * slow

    def start(self) -> None:
        for i, node in enumerate(self.nodes):
            self.connect(i, self.env.now)
            node.spawn(self.claimer(i))

    def connect(self, index: int, at: float) -> None:
        self._send(index, XREADGROUP, at)

    def _send(self, index: int, op: int, at: float, key: int = 0) -> None:
        node = self.nodes[index]
        clients = self.model.clients
        rows = clients.build(
            np.array([op], dtype=np.int8),
            np.array([-1]),
            np.array([key]),
            np.array([0]),
            np.array([at]),
            np.array([WORKER_BASE + index]),
            np.array([True]),
            src=node.name,
        )
        rows["deadline"][:] = np.inf  # BLOCK 0
        clients.submit(rows, src=node.name)

    def claimer(self, index: int) -> Generator[Any, Any, None]:
        """XAUTOCLAIM every `xautoclaim_every_ms` (a separate loop of the consumer)."""
        node = self.nodes[index]
        while True:
            yield self.env.timeout(self.claim_every_ms)
            if node.is_paused:
                continue  # a stopped process sends nothing
            if self.model.clients.producing or self.stream().pel:
                self._send(index, XAUTOCLAIM, self.env.now)

    def stream(self) -> StreamState:
        return self.model.server.store.stream

    # --- the server's side ---------------------------------------------------------------------------
    def served(
        self,
        conn: int,
        batch: list[tuple[int, int]],
        reply_at: float,
        claimed: bool,
        server: str = "redis",
    ) -> None:
        """The reply of `server` to XREADGROUP / XAUTOCLAIM (leaving at `reply_at`) is a batch."""
        index = conn - WORKER_BASE
        node = self.nodes[index]
        if not node.is_running:
            return  # the entries stay in the PEL, owned by a consumer that is gone
        received = reply_at + self.net.delay(server, node.name, 20 + 100 * len(batch))
        hows = self._handed_out(batch, claimed)
        if node.is_paused:
            # SIGSTOP: the reply waits in the socket; the consumer takes it when it runs again
            self.parked[index].append((list(batch), hows, received, claimed))
            return
        self._take(index, batch, hows, received, claimed)

    def _handed_out(self, batch: list[tuple[int, int]], claimed: bool) -> list[int]:
        """How each entry of a batch reached its consumer (and remember it)."""
        if not batch:
            return []
        items = np.array([item for _seq, item in batch], dtype=np.int64)
        ids = items >> 1
        top = int(ids.max()) + 1
        if top > self._handed.size:
            grown = np.zeros(max(top, 2 * self._handed.size, 1024), dtype=np.uint8)
            grown[: self._handed.size] = self._handed
            self._handed = grown
        bit = (1 << (2 * (items & 1) + int(claimed))).astype(np.uint8)
        again = (self._handed[ids] & bit) != 0
        self._handed[ids] |= bit
        if claimed:
            return [CLAIMED] * len(batch)
        return np.where(again, READ_AGAIN, FIRST_READ).tolist()

    def _take(
        self,
        index: int,
        batch: list[tuple[int, int]],
        hows: list[int],
        received: float,
        claimed: bool,
    ) -> None:
        """Consumer `index` processes a batch that reached it at `received`, XACKs it, and
        (after an XREADGROUP) reads again."""
        node = self.nodes[index]
        t = max(received, float(self.busy_until[index]))
        step = self.processing_ms * node.slowdown
        for (_seq, item), how in zip(batch, hows, strict=True):
            t += step
            self.pending[index].append((item, t, how))
        if batch:
            self.busy_until[index] = t
            self._token += 1
            self.xacks[self._token] = list(batch)
            self._send(index, XACK, t, key=self._token)
            if claimed:
                self.claimed_entries += len(batch)
        if not claimed:
            self.connect(index, t)

    def resumed(self, index: int) -> None:
        """A paused consumer runs again: it takes the replies that waited in its socket."""
        now = self.env.now
        parked, self.parked[index] = self.parked[index], []
        for batch, hows, received, claimed in parked:
            self._take(index, batch, hows, max(received, now), claimed)
        if self.read_on_resume[index]:
            self.read_on_resume[index] = False
            self.connect(index, now + self.model.config.client.reconnect_delay_ms)

    def on_replies(
        self, rows: Rows, reply_at: np.ndarray, status: np.ndarray, aux: np.ndarray
    ) -> None:
        """Errors only (batches arrive through `served`): reconnect and read again."""
        reconnect = self.model.config.client.reconnect_delay_ms
        for i, index in enumerate((rows["conn"] - WORKER_BASE).tolist()):
            op = int(rows["op"][i])
            if op == XACK and status[i] != 0:
                self.xacks.pop(int(rows["key"][i]), None)  # never executed (or unknown)
            if op != XREADGROUP:
                continue
            st = int(status[i])
            if (
                # -READONLY: a deposed master (now a replica); -NOREPLICAS: XREADGROUP is a
                # write command, refused like XADD under min-replicas-to-write
                st in (ERR_LOADING, ERR_REFUSED, ERR_RESET, NO_ANSWER, ERR_READONLY, ERR_NOREPLICAS)
                and self.nodes[index].is_running
                and self.model.config.client.reconnect
            ):
                if self.nodes[index].is_paused:
                    self.read_on_resume[index] = True  # it reads the error once it runs
                    continue
                at = reply_at[i] if np.isfinite(reply_at[i]) else self.env.now
                self.connect(index, float(at) + reconnect)

    def lose_trimmed(self, items: list[int], t_ms: float) -> None:
        """Entries gone from the stream and the group before anyone processed them. One that a
        consumer holds (read before the trim, or before XAUTOCLAIM reported it deleted) is
        still processed by it; lost only if that consumer dies first (`before_down`)."""
        ids = np.array(items, dtype=np.int64) >> 1
        if ids.size:
            ids = ids[self.history.deliveries[ids] == 0]
            held = self.processing(ids)
            if held.any():
                self.orphans.update(ids[held].tolist())
                ids = ids[~held]
            self.history.lose(ids, "trimmed_before_read", t_ms)

    # --- the consumers' side ----------------------------------------------------------------------------
    def flush(self, now: float) -> None:
        """Record the entries whose processing finished by `now` as delivered."""
        for index, items in enumerate(self.pending):
            if not items or items[0][1] > now:
                continue
            k = 0
            while k < len(items) and items[k][1] <= now:
                k += 1
            done, self.pending[index] = items[:k], items[k:]
            item = np.array([d[0] for d in done], dtype=np.int64)
            times = np.array([d[1] for d in done])
            how = np.array([d[2] for d in done], dtype=np.int8)
            self._deliver(item, times, how)

    def _deliver(self, item: np.ndarray, times: np.ndarray, how: np.ndarray) -> None:
        """Record one consumer's processed entries (in processing order) as delivered."""
        claimed = how == CLAIMED
        retry = (item & 1) == 1
        ids = item >> 1
        groups = (
            (claimed, "claimed_pending_entry"),
            (~claimed & retry, "client_retry"),
            (~claimed & ~retry, self.redelivery_cause),
        )
        if not (self.history.deliveries[ids] > 0).any() and bool((ids[1:] > ids[:-1]).all()):
            self._deliver_groups(ids, times, groups)  # no copy can be a duplicate
            return
        # the cause of each copy if it is a duplicate: an entry handed out once by XREADGROUP
        # and once by XAUTOCLAIM (its reader was still on it) is the claim's, whichever copy
        # comes second; a retried XADD's twin the retry's; one XREADGROUP handed out again the
        # group reset's (`redelivery_cause`)
        causes = ["claimed_pending_entry", "client_retry", self.redelivery_cause]
        was_claimed = (self._handed[ids] & (2 << (2 * (item & 1)))) != 0
        first_claimed = (how == FIRST_READ) & ~retry & was_claimed
        code = np.where(claimed | first_claimed, 0, np.where(retry | (how == FIRST_READ), 1, 2))
        order = np.concatenate([np.flatnonzero(sel) for sel, _cause in groups])
        seen = self.history.deliveries[ids[order]] > 0
        _, first = np.unique(ids[order], return_index=True)
        repeat = np.ones(order.size, dtype=bool)
        repeat[first] = False
        dups = order[seen | repeat]
        group_code = np.where(claimed, 0, np.where(retry, 1, 2))
        if (code[dups] == group_code[dups]).all():
            self._deliver_groups(ids, times, groups)
            return
        # record them in processing order, each run of copies with its own cause: the copy
        # processed first is the delivery
        starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
        for a, b in zip(starts.tolist(), [*starts[1:].tolist(), ids.size], strict=True):
            self.history.deliver(ids[a:b], times[a:b], dup_cause=causes[int(code[a])])

    def _deliver_groups(
        self, ids: np.ndarray, times: np.ndarray, groups: tuple[tuple[np.ndarray, str], ...]
    ) -> None:
        """One `deliver` per duplicate cause (the common case)."""
        for sel, cause in groups:
            if sel.any():
                self.history.deliver(ids[sel], times[sel], dup_cause=cause)

    def before_down(self, index: int) -> None:
        """A consumer dies: what it read stays pending in the group (nothing is lost)."""
        self.model.settle()
        now = self.env.now
        self.flush(now)
        held = [item >> 1 for item, _done, _how in self.pending[index]]
        held += [item >> 1 for batch, _h, _at, _c in self.parked[index] for _seq, item in batch]
        self.pending[index] = []
        self.parked[index] = []
        self.read_on_resume[index] = False
        self.busy_until[index] = now
        gone = [i for i in held if i in self.orphans]
        if gone:
            # its entry left the stream and the PEL: no other consumer can process it
            ids = np.array(gone, dtype=np.int64)
            self.history.lose(ids[self.history.deliveries[ids] == 0], "trimmed_before_read", now)
        server = self.model.server
        conn = WORKER_BASE + index
        if len(server.queue):
            mine = server.queue.field("conn") == conn
            if mine.any():
                server.queue.remove(mine)
        stream = server.store.stream
        if conn in stream.blocked:
            stream.blocked.remove(conn)

    def server_down(self, stream: StreamState | None = None) -> None:
        """The server died (or was turned into a replica: -UNBLOCKED): blocked consumers see
        their connection reset and read again."""
        stream = self.stream() if stream is None else stream
        delay = self.model.config.client.reconnect_delay_ms
        for conn in list(stream.blocked):
            index = conn - WORKER_BASE
            node = self.nodes[index]
            if node.is_paused and self.model.config.client.reconnect:
                self.read_on_resume[index] = True  # it sees the reset once it runs
            elif node.is_up and self.model.config.client.reconnect:
                self.connect(index, self.env.now + delay)
        stream.blocked.clear()

    def retime(self, now: float) -> None:
        """slow_consumer: new speed applies to batches read from now on (simplification)."""

    def in_progress(self) -> int:
        return sum(len(p) for p in self.pending) + sum(
            len(batch) for parked in self.parked for batch, _h, _at, _c in parked
        )

    def processing(self, ids: np.ndarray) -> np.ndarray:
        """Which of `ids` a consumer has received and is still processing (or will, once it
        runs again)."""
        held = [item >> 1 for items in self.pending for item, _done, _how in items]
        held += [
            item >> 1
            for parked in self.parked
            for batch, _h, _at, _c in parked
            for _s, item in batch
        ]
        return np.isin(ids, np.array(held, dtype=np.int64))
