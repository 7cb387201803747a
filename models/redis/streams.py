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
from typing import TYPE_CHECKING, Any

import numpy as np

from models.redis.commands import XACK, XAUTOCLAIM, XREADGROUP
from models.redis.consumer_process import ConsumerProcess
from models.redis.replies import WORKER_BASE
from models.redis.requests import Rows
from models.redis.store import ERR_LOADING, ERR_REFUSED, ERR_RESET, NO_ANSWER

if TYPE_CHECKING:
    from models.redis.model import RedisModel

NODE_MAX_ENTRIES = 100  # stream-node-max-entries: MAXLEN ~ trims whole nodes


class StreamState:
    """One stream and its consumer group, inside the server's dataset."""

    def __init__(self) -> None:
        self.entries: deque[tuple[int, int]] = deque()  # (item = id << 1 | retry, journal pos)
        self.first_seq = 0  # sequence number of entries[0] (the entry id's order)
        self.last_delivered = 0  # the group's last-delivered-id: next entry ">" returns
        self.pel: dict[int, list[Any]] = {}  # seq -> [item, conn, delivery count, delivered ms]
        self.blocked: deque[int] = deque()  # consumers blocked in XREADGROUP, oldest first
        self.xacks: dict[int, list[int]] = {}  # XACK request token -> the seqs it acknowledges
        self.trimmed = 0

    @property
    def next_seq(self) -> int:
        return self.first_seq + len(self.entries)

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

    def read_group(self, conn: int, count: int, t_ms: float) -> list[tuple[int, int]]:
        """XREADGROUP >: up to `count` new entries, now pending for `conn`."""
        start = self.last_delivered
        end = min(self.next_seq, start + count)
        batch = []
        for seq in range(start, end):
            item = self.entries[seq - self.first_seq][0]
            self.pel[seq] = [item, conn, 1, t_ms]
            batch.append((seq, item))
        self.last_delivered = end
        return batch

    def claim(
        self, conn: int, min_idle_ms: float, count: int, t_ms: float
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
                continue
            entry[1], entry[2], entry[3] = conn, entry[2] + 1, t_ms
            claimed.append((seq, entry[0]))
        return claimed, deleted

    def truncate(self, position: int) -> None:
        """A restart recovered the journal up to `position`: later entries are gone."""
        while self.entries and self.entries[-1][1] >= position:
            self.entries.pop()
        end = self.next_seq
        self.last_delivered = min(self.last_delivered, end)
        for seq in [s for s in self.pel if s >= end]:
            del self.pel[seq]
        self.blocked.clear()

    def backlog(self) -> int:
        return self.next_seq - self.last_delivered + len(self.pel)


class ConsumerNode(ConsumerProcess):
    """A stream consumer process."""

    def __init__(self, consumers: StreamConsumers, index: int):
        super().__init__(consumers, index)
        self.consumers = consumers

    def on_restart(self) -> None:
        self.consumers.connect(self.index, self.env.now)
        self.spawn(self.consumers.claimer(self.index))


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
        # entries received and not processed yet: (item, done_ms, claimed), per consumer
        self.pending: list[list[tuple[int, float, bool]]] = [[] for _ in range(count)]
        self.busy_until = np.full(count, -np.inf)
        self._token = 0
        self.claimed_entries = 0

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
        while True:
            yield self.env.timeout(self.claim_every_ms)
            if self.model.clients.producing or self.stream().pel:
                self._send(index, XAUTOCLAIM, self.env.now)

    def stream(self) -> StreamState:
        return self.model.server.store.stream

    # --- the server's side ---------------------------------------------------------------------------
    def served(
        self, conn: int, batch: list[tuple[int, int]], reply_at: float, claimed: bool
    ) -> None:
        """The server's reply to XREADGROUP / XAUTOCLAIM (leaving at `reply_at`) is a batch."""
        index = conn - WORKER_BASE
        node = self.nodes[index]
        if not node.is_up:
            return  # the entries stay in the PEL, owned by a consumer that is gone
        received = reply_at + self.net.delay("redis", node.name, 20 + 100 * len(batch))
        t = max(received, float(self.busy_until[index]))
        step = self.processing_ms * node.slowdown
        for _seq, item in batch:
            t += step
            self.pending[index].append((item, t, claimed))
        if batch:
            self.busy_until[index] = t
            self._token += 1
            self.stream().xacks[self._token] = [seq for seq, _item in batch]
            self._send(index, XACK, t, key=self._token)
            if claimed:
                self.claimed_entries += len(batch)
        if not claimed:
            self.connect(index, t)

    def on_replies(
        self, rows: Rows, reply_at: np.ndarray, status: np.ndarray, aux: np.ndarray
    ) -> None:
        """Errors only (batches arrive through `served`): reconnect and read again."""
        reconnect = self.model.config.client.reconnect_delay_ms
        for i, index in enumerate((rows["conn"] - WORKER_BASE).tolist()):
            if int(rows["op"][i]) != XREADGROUP:
                continue
            st = int(status[i])
            if (
                st in (ERR_LOADING, ERR_REFUSED, ERR_RESET, NO_ANSWER)
                and self.nodes[index].is_up
                and self.model.config.client.reconnect
            ):
                at = reply_at[i] if np.isfinite(reply_at[i]) else self.env.now
                self.connect(index, float(at) + reconnect)

    def lose_trimmed(self, items: list[int], t_ms: float) -> None:
        ids = np.array(items, dtype=np.int64) >> 1
        if ids.size:
            ids = ids[self.history.deliveries[ids] == 0]
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
            claimed = np.array([d[2] for d in done], dtype=bool)
            retry = (item & 1) == 1
            ids = item >> 1
            for sel, cause in (
                (claimed, "claimed_pending_entry"),
                (~claimed & retry, "client_retry"),
                (~claimed & ~retry, "redelivered_after_restart"),
            ):
                if sel.any():
                    self.history.deliver(ids[sel], times[sel], dup_cause=cause)

    def before_down(self, index: int) -> None:
        """A consumer dies: what it read stays pending in the group (nothing is lost)."""
        self.model.settle()
        now = self.env.now
        self.flush(now)
        self.pending[index] = []
        self.busy_until[index] = now
        server = self.model.server
        conn = WORKER_BASE + index
        if len(server.queue):
            mine = server.queue.field("conn") == conn
            if mine.any():
                server.queue.remove(mine)
        stream = server.store.stream
        if conn in stream.blocked:
            stream.blocked.remove(conn)

    def server_down(self) -> None:
        """The server died: blocked consumers see their connection reset and read again."""
        stream = self.stream()
        delay = self.model.config.client.reconnect_delay_ms
        for conn in list(stream.blocked):
            index = conn - WORKER_BASE
            if self.nodes[index].is_up and self.model.config.client.reconnect:
                self.connect(index, self.env.now + delay)
        stream.blocked.clear()

    def retime(self, now: float) -> None:
        """slow_consumer: new speed applies to batches read from now on (simplification)."""

    def in_progress(self) -> int:
        return sum(len(p) for p in self.pending)
