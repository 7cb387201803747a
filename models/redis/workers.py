"""BRPOP workers: the consuming side of a Redis list used as a queue (LPUSH / BRPOP).

Each worker loops: `BRPOP queue 0` (block until an item is there), process the item for
`processing_ms` (times the node's slowdown), then BRPOP again. The item left Redis when the
pop ran: a worker that crashes after popping and before finishing loses it (cause
`popped_not_processed`, the reason the "reliable queue" pattern BLMOVE/LMOVE exists). A pop
lost in a server crash puts the item back, so it may be processed twice. A paused (SIGSTOPped)
worker keeps what it holds: a reply that reaches it meanwhile waits in its socket until it runs
again, then it processes the item and BRPOPs again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from models.redis.clients import WORKER_BASE
from models.redis.commands import BRPOP
from models.redis.consumer_process import ConsumerProcess
from models.redis.requests import Rows
from models.redis.store import (
    ERR_LOADING,
    ERR_NOREPLICAS,
    ERR_READONLY,
    ERR_REFUSED,
    ERR_RESET,
    NO_ANSWER,
    OK,
)

if TYPE_CHECKING:
    from models.redis.model import RedisModel


class WorkerNode(ConsumerProcess):
    """A worker process; a crash loses the item it is working on."""

    def __init__(self, workers: Workers, index: int):
        super().__init__(workers, index)
        self.workers = workers

    def on_restart(self) -> None:
        self.workers.connect(self.index, self.env.now)

    def pause(self, duration_ms: float | None) -> None:
        if self.is_running and not self.is_paused:
            self.workers.model.server.settle()  # what was served before the stop is taken
        super().pause(duration_ms)

    def on_resume(self) -> None:
        self.workers.resumed(self.index)


class Workers:
    """The BRPOP workers of a list workload and the items they are processing."""

    def __init__(self, model: RedisModel, count: int):
        self.model = model
        self.ctx = model.ctx
        self.env = model.env
        self.history = model.ctx.history
        assert model.ctx.network is not None
        self.net = model.ctx.network
        self.processing_ms = model.ctx.spec.workload.processing_ms
        self.nodes = [WorkerNode(self, i) for i in range(count)]
        # items received and not processed yet: (worker, item, done_ms), in done order per worker
        self.pending: list[list[tuple[int, float]]] = [[] for _ in range(count)]
        self.busy_until = np.full(count, -np.inf)
        self._speed = [1.0] * count  # slowdown the pending items were timed with
        # replies that reached a paused (SIGSTOP) worker: they wait in its socket until it runs
        # again, (item, received_ms) per worker; and whether one it must answer by BRPOPing
        # again (an error, a reset connection) is among them
        self.parked: list[list[tuple[int, float]]] = [[] for _ in range(count)]
        self.pop_on_resume = [False] * count
        # why an item popped again came back: the last time the list went back in time (a
        # restart from older files, a failover to a replica that missed the pop)
        self.redelivery_cause = "redelivered_after_restart"

    @property
    def min_cycle_ms(self) -> float:
        """Lower bound of (item received -> next BRPOP sent)."""
        slow = min((n.slowdown for n in self.nodes), default=1.0)
        return self.processing_ms * slow

    def start(self) -> None:
        for i in range(len(self.nodes)):
            self.connect(i, self.env.now)

    def connect(self, index: int, at: float) -> None:
        """The worker (re)connects and blocks on BRPOP."""
        self._brpop(index, at)

    def _brpop(self, index: int, at: float) -> None:
        node = self.nodes[index]
        clients = self.model.clients
        rows = clients.build(
            np.array([BRPOP], dtype=np.int8),
            np.array([-1]),
            np.array([0]),
            np.array([0]),
            np.array([at]),
            np.array([WORKER_BASE + index]),
            np.array([True]),
            src=node.name,
        )
        rows["deadline"][:] = np.inf  # BRPOP queue 0: block forever
        clients.submit(rows, src=node.name)

    # --- replies ---------------------------------------------------------------------------------
    def on_replies(
        self, rows: Rows, reply_at: np.ndarray, status: np.ndarray, aux: np.ndarray
    ) -> None:
        conn = rows["conn"] - WORKER_BASE
        reconnect = self.model.config.client.reconnect_delay_ms
        for i, worker in enumerate(conn.tolist()):
            st = int(status[i])
            if st == OK and aux[i] >= 0:
                self.served(worker + WORKER_BASE, int(aux[i]), float(reply_at[i]), arrived=True)
            elif (
                # -READONLY: a deposed master; -NOREPLICAS: BRPOP writes (it pops)
                st in (ERR_LOADING, ERR_REFUSED, ERR_RESET, NO_ANSWER, ERR_READONLY, ERR_NOREPLICAS)
                and self.nodes[worker].is_running
                and self.model.config.client.reconnect
            ):
                if self.nodes[worker].is_paused:
                    self.pop_on_resume[worker] = True  # it reads the error once it runs
                    continue
                at = reply_at[i] if np.isfinite(reply_at[i]) else self.env.now
                self._brpop(worker, float(at) + reconnect)

    def served(
        self, conn: int, item: int, at_ms: float, arrived: bool = False, server: str = "redis"
    ) -> None:
        """`server` handed `item` to worker `conn` (reply leaving at `at_ms`)."""
        worker = conn - WORKER_BASE
        node = self.nodes[worker]
        received = at_ms if arrived else at_ms + self.net.delay(server, node.name, 20)
        if not node.is_running:
            self._lose([item])
            return
        if node.is_paused:
            # SIGSTOP: the reply waits in the socket; the worker takes it when it runs again
            self.parked[worker].append((item, received))
            return
        self._take(worker, item, received)

    def _take(self, worker: int, item: int, received: float) -> None:
        """Worker `worker` processes `item` that reached it at `received`, then BRPOPs again."""
        node = self.nodes[worker]
        done = max(received, self.busy_until[worker]) + self.processing_ms * node.slowdown
        self._speed[worker] = node.slowdown
        self.busy_until[worker] = done
        self.pending[worker].append((item, done))
        self._brpop(worker, done)

    def resumed(self, index: int) -> None:
        """A paused worker runs again: it takes the replies that waited in its socket."""
        now = self.env.now
        parked, self.parked[index] = self.parked[index], []
        for item, received in parked:
            self._take(index, item, max(received, now))
        if self.pop_on_resume[index]:
            self.pop_on_resume[index] = False
            if not parked:
                self._brpop(index, now + self.model.config.client.reconnect_delay_ms)

    def flush(self, now: float) -> None:
        """Record the items whose processing finished by `now` as delivered."""
        for worker, items in enumerate(self.pending):
            if not items or items[0][1] > now:
                continue
            k = 0
            while k < len(items) and items[k][1] <= now:
                k += 1
            done, self.pending[worker] = items[:k], items[k:]
            self._deliver(done)

    def _deliver(self, done: list[tuple[int, float]]) -> None:
        items = np.array([d[0] for d in done], dtype=np.int64)
        times = np.array([d[1] for d in done])
        retry = (items & 1) == 1
        ids = items >> 1
        if (~retry).any():
            self.history.deliver(ids[~retry], times[~retry], dup_cause=self.redelivery_cause)
        if retry.any():
            self.history.deliver(ids[retry], times[retry], dup_cause="client_retry")

    def before_down(self, index: int) -> None:
        """A worker dies: what it popped and did not finish is lost; its BRPOP goes away."""
        self.model.server.settle()
        now = self.env.now
        self.flush(now)
        lost = [item for item, _done in self.pending[index]]
        lost += [item for item, _received in self.parked[index]]
        self.pending[index] = []
        self.parked[index] = []
        self.pop_on_resume[index] = False
        self.busy_until[index] = now
        self._lose(lost)
        server = self.model.server
        conn = WORKER_BASE + index
        if len(server.queue):
            mine = server.queue.field("conn") == conn
            if mine.any():
                server.queue.remove(mine)
        if conn in server.store.blocked:
            server.store.blocked.remove(conn)

    def _lose(self, items: list[int]) -> None:
        if items:
            ids = np.array(items, dtype=np.int64) >> 1
            self.history.lose(ids, "popped_not_processed", self.env.now)

    def server_down(self, blocked: list[int]) -> None:
        """The server died: workers blocked in BRPOP see their connection reset and retry."""
        delay = self.model.config.client.reconnect_delay_ms
        for conn in blocked:
            index = conn - WORKER_BASE
            node = self.nodes[index]
            if node.is_paused and self.model.config.client.reconnect:
                self.pop_on_resume[index] = True  # it sees the reset once it runs
            elif node.is_up and self.model.config.client.reconnect:
                self._brpop(index, self.env.now + delay)

    def retime(self, now: float) -> None:
        """The speed of a worker changed (slow_consumer): its current item finishes accordingly."""
        for worker, items in enumerate(self.pending):
            node = self.nodes[worker]
            if len(items) == 1 and items[0][1] > now:
                item, done = items[0]
                left = (done - now) / max(self._speed[worker], 1e-12)
                new_done = now + left * node.slowdown
                items[0] = (item, new_done)
                self.busy_until[worker] = new_done
                self._reschedule_brpop(worker, done, new_done)
            self._speed[worker] = node.slowdown

    def _reschedule_brpop(self, worker: int, old: float, new: float) -> None:
        server = self.model.server
        if not len(server.queue):
            return
        mine = (server.queue.field("conn") == WORKER_BASE + worker) & (
            server.queue.field("send") >= old - 1e-9
        )
        if mine.any():
            rows = server.queue.remove(mine)
            shift = new - old
            for key in ("arrival", "send", "deadline"):
                rows[key] = rows[key] + shift
            server.submit(rows)

    def in_progress(self) -> int:
        return sum(len(p) for p in self.pending) + sum(len(p) for p in self.parked)

    def processing(self, ids: np.ndarray) -> np.ndarray:
        """Which of `ids` a worker has popped and is still processing (or will, once it runs
        again)."""
        held = [item >> 1 for items in self.pending for item, _done in items]
        held += [item >> 1 for parked in self.parked for item, _received in parked]
        return np.isin(ids, np.array(held, dtype=np.int64))
