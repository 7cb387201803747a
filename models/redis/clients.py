"""Client connections as real client libraries behave: send, wait, time out, retry, reconnect.

Open loop: each producer connection sends commands at their intended times, whatever the
latency (like a multiplexing client: Lettuce, ioredis); with `pipeline` k a producer writes k
commands in one go (a packet shares one read() and one write() on the server). Closed loop:
each client sends a pipeline, waits for all replies (plus think time), then sends the next one.

The acknowledgement of a write is its reply reaching the client. A request unanswered after
`timeout_ms` is indeterminate (it may or may not have run; it still runs if it reached the
server). With `retries`, a timed-out request, or one answered -LOADING or refused, is sent
again after `retry_backoff_ms`: a retried INCR or LPUSH whose first attempt ran applies twice
(a duplicate, cause `client_retry`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from models.redis.commands import (
    CACHE_GET,
    GET,
    INCR,
    IS_MESSAGE,
    LPUSH,
    PUBLISH,
    SET,
    SLOW,
    XADD,
)
from models.redis.replies import (
    ADMIN_CONN,
    REPLY_BYTES,
    REQUEST_OVERHEAD_BYTES,
    WORKER_BASE,
    ClientReplies,
)
from models.redis.requests import Rows, take_rows
from simulator.node import Node
from simulator.workload import Batch, make_workload

if TYPE_CHECKING:
    from models.redis.model import RedisModel

CHUNK_MS = 50.0  # open-loop arrivals are generated (and pipelines flushed) per chunk


class PipelineCommands(NamedTuple):
    """Request columns of closed-loop pipelines, in connection order."""

    op: np.ndarray
    msg: np.ndarray
    keys: np.ndarray
    sizes: np.ndarray
    intended: np.ndarray
    conn: np.ndarray
    first: np.ndarray


class Clients(ClientReplies):
    """Every client connection of the `clients` host: what they send and when."""

    def __init__(self, model: RedisModel):
        self.model = model
        self.ctx = model.ctx
        self.env = model.env
        self.history = model.ctx.history
        config = model.config
        self.config = config
        client = config.client
        self.timeout_ms = client.timeout_ms if client.timeout_ms > 0 else np.inf
        self.retries = client.retries
        self.backoff_ms = client.retry_backoff_ms
        spec = model.ctx.spec.workload
        self.spec = spec
        self.closed = spec.mode == "closed"
        self.pipeline = spec.pipeline
        self.think_ms = spec.think_time_ms
        self.kind = config.workload
        self.write_op = INCR if config.ops.write_command == "INCR" else SET
        self.reacts = self.closed or self.retries > 0  # the client acts when a deadline passes
        self.feedback = self.reacts or self.kind in ("cache", "list", "stream")
        self.node = Node(model.ctx, "clients", role="client")
        self.rng = model.ctx.rng("redis.clients")
        self.cost_rng = model.ctx.rng("redis.command_costs")
        self.read_rng = model.ctx.rng("redis.read_from")
        self.workload = make_workload(model.ctx.rng, spec, model.ctx.duration_ms)
        self.net = model.ctx.network
        self.held_requests: list[tuple[str, Rows]] = []
        self.held_replies: list[tuple[Rows, np.ndarray, np.ndarray]] = []
        self.producing = False
        self.gets = 0
        self.hits = 0

    # --- building requests ----------------------------------------------------------------------
    def build(
        self,
        op: np.ndarray,
        msg: np.ndarray,
        key: np.ndarray,
        nbytes: np.ndarray,
        send: np.ndarray,
        conn: np.ndarray,
        first: np.ndarray,
        attempt: np.ndarray | None = None,
        src: str = "clients",
        dst: str | None = None,
    ) -> Rows:
        """Request rows (sorted by arrival) to `dst` (default: the master): network delays
        drawn once, per packet."""
        n = op.size
        dst = self.model.server.name if dst is None else dst
        if n == 1:  # (one command, as closed loops and consumers send: nothing to group)
            first, last = np.ones(1, dtype=bool), np.ones(1, dtype=bool)
        else:
            first = first.copy()
            if n:
                first[0] = True
            last = np.empty(n, dtype=bool)
            last[:-1] = first[1:]
            last[-1:] = True
        single = n == 1 or bool(first.all())
        if single:  # one command per request (no pipelining): no grouping needed
            there = self.net.delays(src, dst, n, nbytes + REQUEST_OVERHEAD_BYTES)
            back = self.net.delays(dst, src, n, REPLY_BYTES)
            arrival, reply_delay = send + there, back
        else:
            packet = np.cumsum(first) - 1
            packets = int(packet[-1]) + 1
            req_bytes = np.bincount(
                packet, weights=nbytes + REQUEST_OVERHEAD_BYTES, minlength=packets
            )
            rep_bytes = np.bincount(packet, minlength=packets) * float(REPLY_BYTES)
            there = self.net.delays(src, dst, packets, req_bytes)
            back = self.net.delays(dst, src, packets, rep_bytes)
            arrival, reply_delay = send + there[packet], back[packet]
        jitter = None
        if self.config.command_cost_distribution == "exponential":
            jitter = self.cost_rng.exponential(1.0, n)
        given: Rows = {
            "arrival": arrival,
            "send": np.asarray(send, dtype=np.float64),
            "reply_delay": reply_delay,
            "op": np.asarray(op, dtype=np.int8),
            "conn": np.asarray(conn, dtype=np.int32),
            "msg": np.asarray(msg, dtype=np.int64),
            "key": np.asarray(key, dtype=np.int64),
            "nbytes": np.asarray(nbytes, dtype=np.int32),
        }
        if not single:  # (all true otherwise: nothing to sort)
            given["first"], given["last"] = first, last
        if attempt is not None:
            given["attempt"] = attempt.astype(np.int8)
        if jitter is not None:
            given["jitter"] = jitter
        if n > 1 and bool((arrival[1:] < arrival[:-1]).any()):
            # sort what was drawn in send order; the columns computed below are per row
            given = take_rows(given, np.argsort(arrival, kind="stable"))
        rows: Rows = given
        if single:
            rows["first"], rows["last"] = first, last
        rows["deadline"] = rows["send"] + self.timeout_ms
        rows["cost"], rows["rcost"], rows["wcost"] = self.model.costs.row_costs(
            rows["op"], rows["nbytes"], rows["first"], rows["last"], rows.pop("jitter", None)
        )
        if attempt is None:
            rows["attempt"] = np.zeros(n, dtype=np.int8)
        rows["gave_up"] = np.zeros(n, dtype=bool)
        return rows

    def submit(self, rows: Rows, src: str = "clients", dst: str | None = None) -> None:
        """Hand requests to the network: through, or held while the link is cut (held
        requests go to the master when the link is back)."""
        if not rows["arrival"].size:
            return
        server = self.model.server if dst is None else self.model.servers[dst]
        if not self.net.reachable(src, server.name):
            self.held_requests.append((src, rows))
            return
        server.submit(rows)

    # --- open loop ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.producing = True
        if self.closed:
            conns = np.arange(self.spec.clients)
            self._next_requests(conns, np.full(conns.size, self.env.now))
        else:
            # the arrival process goes on while the client host is down: what it would have
            # sent then fails (see _emit), and sending resumes when the host is back
            self.env.process(self._produce())
        if self.config.ops.slow_command:
            self.env.process(self._slow_commands())

    def stop(self) -> None:
        self.producing = False

    def _produce(self) -> Generator[Any, Any, None]:
        env = self.env
        while self.producing and not self.workload.exhausted:
            batch = self.workload.next_batch(env.now + CHUNK_MS)
            if len(batch):
                self._emit(batch)
            yield env.timeout(CHUNK_MS)

    def _ops_for(self, n: int) -> np.ndarray:
        kind = self.kind
        if kind == "kv":
            ratio = self.config.ops.read_ratio
            if ratio <= 0:
                return np.full(n, self.write_op, dtype=np.int8)
            reads = self.rng.random(n) < ratio
            return np.where(reads, GET, self.write_op).astype(np.int8)
        code = {"list": LPUSH, "pubsub": PUBLISH, "cache": CACHE_GET, "stream": XADD}[kind]
        return np.full(n, code, dtype=np.int8)

    def _messages(self, op: np.ndarray, intended: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Register the messages the commands carry; returns each command's first message id."""
        msg = np.full(op.size, -1, dtype=np.int64)
        carrying = IS_MESSAGE[op]
        count = int(carrying.sum())
        if not count:
            return msg
        copies = self.model.copies
        if copies == 1 and count == op.size:  # every command carries one (writes only)
            return self.history.produce(intended, keys) + np.arange(count, dtype=np.int64)
        if copies == 1:
            first = self.history.produce(intended[carrying], keys[carrying])
            msg[carrying] = first + np.arange(count)
        else:
            # one message id per subscriber copy of each PUBLISH (key = subscriber index)
            times = np.repeat(intended[carrying], copies)
            sub_keys = np.tile(np.arange(copies), count)
            first = self.history.produce(times, sub_keys)
            msg[carrying] = first + copies * np.arange(count)
        return msg

    def commands(self, intended: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The commands of one batch of the workload and their first message ids (registered in
        the history as produced at `intended`)."""
        op = self._ops_for(intended.size)
        return op, self._messages(op, intended, keys)

    def _emit(self, batch: Batch) -> None:
        op, msg = self.commands(batch.intended_ms, batch.keys)
        if not self.node.is_up:
            self._client_down(msg)
            return
        send, first, order = self._pipelines(batch.intended_ms, batch.producer)
        take = (lambda a: a[order]) if order is not None else (lambda a: a)
        columns = (take(op), take(msg), take(batch.keys), take(batch.sizes), send)
        producer = take(batch.producer)
        if self.config.client.read_from == "replicas":
            self._emit_split(columns, producer, first)
            return
        self.submit(self.build(*columns, producer, first))

    def _emit_split(
        self, columns: tuple[np.ndarray, ...], producer: np.ndarray, first: np.ndarray
    ) -> None:
        """read_from = replicas: each GET to a replica picked at random, the rest to the
        master; a pipelined packet is split between them (a packet per server)."""
        op = columns[0]
        replicas = self._read_replicas()
        dest = np.full(op.size, -1)
        gets = op == GET
        if replicas and gets.any():
            dest[gets] = self.read_rng.integers(0, len(replicas), int(gets.sum()))
        packet = np.cumsum(first) - 1
        for target in np.unique(dest).tolist():
            sel = dest == target
            op_, msg, keys, sizes, send = (c[sel] for c in columns)
            pk = packet[sel]
            starts = np.r_[True, pk[1:] != pk[:-1]]
            dst = None if target < 0 else replicas[target]
            rows = self.build(op_, msg, keys, sizes, send, producer[sel], starts, dst=dst)
            self.submit(rows, dst=dst)

    def _read_replicas(self) -> list[str]:
        """Replicas the clients can read from now (reachable ones; none: the master)."""
        replication = self.model.replication
        if replication is None:
            return []
        return [name for name in replication.links if self.net.reachable("clients", name)]

    def _pipelines(
        self, intended: np.ndarray, producer: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Group each producer's commands k at a time; a packet leaves with its last command."""
        k = self.pipeline
        n = intended.size
        if k == 1:
            return intended, np.ones(n, dtype=bool), None
        order = np.lexsort((intended, producer))
        prod = producer[order]
        new_producer = np.r_[True, prod[1:] != prod[:-1]]
        start = np.maximum.accumulate(np.where(new_producer, np.arange(n), 0))
        rank = np.arange(n) - start
        first = (rank % k) == 0
        packet = np.cumsum(first) - 1
        last_time = np.zeros(int(packet[-1]) + 1)
        np.maximum.at(last_time, packet, intended[order])
        return last_time[packet], first, order

    def _client_down(self, msg: np.ndarray) -> None:
        ids = self._expand(msg[msg >= 0])
        self.history.fail(ids, self.env.now)

    def _expand(self, first_ids: np.ndarray) -> np.ndarray:
        """Every message id of commands given by their first id (PUBLISH has one per copy)."""
        copies = self.model.copies
        if copies == 1 or first_ids.size == 0:
            return first_ids
        return (first_ids[:, None] + np.arange(copies)[None, :]).ravel()

    # --- closed loop -------------------------------------------------------------------------------
    def _next_requests(self, conns: np.ndarray, at: np.ndarray) -> None:
        """Closed-loop clients send their next pipeline (until the measured phase ends)."""
        keep = at < self.ctx.duration_ms
        if not self.producing or not keep.any():
            return
        c = self.pipeline_commands(conns[keep], at[keep])
        self.submit(self.build(c.op, c.msg, c.keys, c.sizes, c.intended, c.conn, c.first))

    def pipeline_commands(self, conns: np.ndarray, at: np.ndarray) -> PipelineCommands:
        """The next pipeline of each closed-loop connection, sent at `at`: keys and sizes from
        the workload, the commands and their message ids (registered in the history)."""
        k = self.pipeline
        n = conns.size * k
        intended = np.repeat(at, k)
        keys = self.workload.keys.draw(n)
        sizes = self.workload.sizes(n)
        op, msg = self.commands(intended, keys)
        first = (np.arange(n) % k) == 0
        return PipelineCommands(op, msg, keys, sizes, intended, np.repeat(conns, k), first)

    # --- slow commands --------------------------------------------------------------------------------
    def _slow_commands(self) -> Generator[Any, Any, None]:
        ops = self.config.ops
        costs = self.model.costs
        while self.producing:
            yield self.env.timeout(ops.slow_command_every_ms)
            if not self.producing:
                return
            if not self.node.is_up:
                continue
            store = self.model.server.store
            keys = int((store.live.value >= 0).sum()) + store.memory.background_keys
            cost = costs.slow_command_ms(
                ops.slow_command, keys, ops.slow_command_count, ops.slow_command_ms
            )
            now = np.array([self.env.now])
            rows = self.build(
                np.array([SLOW], dtype=np.int8),
                np.array([-1]),
                np.array([0]),
                np.array([0]),
                now,
                np.array([ADMIN_CONN]),
                np.array([True]),
            )
            rows["cost"] = rows["cost"] + cost
            rows["deadline"][:] = np.inf
            self.submit(rows)


__all__ = ["ADMIN_CONN", "CHUNK_MS", "WORKER_BASE", "Clients"]
