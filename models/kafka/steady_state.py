"""The state the steady-state planner keeps (steady_plan.py): connections with their waiting
records, requests on their way to a leader, follower fetch sessions, partition logs and consumer
fetch loops. Plain containers of numpy arrays and lists; the planner's stages change them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from models.kafka.replication import FETCH_REQUEST_BYTES, PARTITION_FIELDS_BYTES
from models.kafka.steady_parts import Draws, Grow, Steps

INF = float("inf")
_F = np.empty(0, dtype=np.float64)
_I = np.empty(0, dtype=np.int64)


class Conn:
    """One producer's connection to one leader: records waiting for the sender; the requests
    sent (numbered `seq`), their batches (numbered `cbi`, in request then partition order)
    and the records on their way (in send order, which is id order)."""

    def __init__(self, producer: int, leader: int, out: Draws, back: Draws):
        self.producer = producer
        self.leader = leader
        self.t, self.ids, self.part, self.size = _F, _I, _I, _F
        self.new: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.out = out  # producer -> leader
        self.back = back  # leader -> producer
        self.last_arrival = -INF
        self.last_answer = -INF
        self.sends = Grow(np.float64)  # per request
        self.answers = Grow(np.float64)  # per request, in order, once known
        self.b_seq = Grow(np.int64)  # per batch: its request
        self.dlv = Grow(np.float64)  # per batch: when its answer reached the consumer (NaN)
        self.dlv_pos = Grow(np.int64)  # per batch: its first record's place in that answer
        self.r_ids = Grow(np.int64)  # per record on its way: id ...
        self.r_cbi = Grow(np.int64)  # ... its batch ...
        self.r_rank = Grow(np.int64)  # ... and its place in the batch (with processing time)
        self.req_end = Grow(np.int64)  # per request: records sent up to its end
        self.req_batch = Grow(np.int64)  # per request: its first batch
        self.sent_records = 0
        self.flushed = 0  # records handed to the history
        self.flushed_seq = 0  # requests whose records were handed to the history
        self.delivered_batches = 0  # batches before this one all reached their consumer
        self.checked = 0  # requests checked against the in-flight limit

    def req_first_batch(self, seq: int) -> int:
        """The first batch of request `seq` (all batches when it was not sent yet)."""
        if seq >= len(self.req_batch):
            return len(self.b_seq)
        return int(self.req_batch.view(seq, seq + 1)[0])

    def add(self, t: np.ndarray, ids: np.ndarray, part: np.ndarray, size: np.ndarray) -> None:
        self.new.append((t, ids, part, size))

    def gather(self) -> None:
        """Records added since the last planning step join those waiting."""
        if not self.new:
            return
        chunks = (
            [(self.t, self.ids, self.part, self.size), *self.new] if self.t.shape[0] else self.new
        )
        self.new = []
        if len(chunks) == 1:
            self.t, self.ids, self.part, self.size = chunks[0]
            return
        self.t = np.concatenate([c[0] for c in chunks])
        self.ids = np.concatenate([c[1] for c in chunks])
        self.part = np.concatenate([c[2] for c in chunks])
        self.size = np.concatenate([c[3] for c in chunks])


@dataclass(slots=True)
class Block:
    """Produce requests on their way to one leader, sorted by arrival, with their batches (in
    request order, partitions ascending; `b_req` is the request of each batch)."""

    arr: np.ndarray  # per request: arrival at the leader
    nbytes: np.ndarray  # size
    conn: np.ndarray  # connection
    seq: np.ndarray  # number on its connection
    first_t: np.ndarray  # send() time of its oldest record
    b_req: np.ndarray  # per batch: its request
    b_part: np.ndarray  # partition
    b_count: np.ndarray  # records
    b_bytes: np.ndarray  # bytes
    b_cbi: np.ndarray  # number on its connection
    b_conn: np.ndarray  # connection

    REQUEST: ClassVar[tuple[str, ...]] = ("arr", "nbytes", "conn", "seq", "first_t")
    BATCH: ClassVar[tuple[str, ...]] = ("b_part", "b_count", "b_bytes", "b_cbi", "b_conn")

    @staticmethod
    def merge(blocks: list[Block]) -> Block:
        """One block of all requests, sorted by arrival (ties keep their order)."""
        if len(blocks) == 1 and bool((np.diff(blocks[0].arr) >= 0).all()):
            return blocks[0]
        req_base = np.cumsum([0] + [b.arr.shape[0] for b in blocks])
        arr = np.concatenate([b.arr for b in blocks])
        order = np.argsort(arr, kind="stable")
        inv = np.empty_like(order)
        inv[order] = np.arange(order.shape[0])
        b_req = np.concatenate([b.b_req + base for b, base in zip(blocks, req_base, strict=False)])
        new_req = inv[b_req]
        b_order = np.argsort(new_req, kind="stable")
        out: dict[str, np.ndarray] = {"b_req": new_req[b_order]}
        for name in Block.REQUEST:
            out[name] = np.concatenate([getattr(b, name) for b in blocks])[order]
        for name in Block.BATCH:
            out[name] = np.concatenate([getattr(b, name) for b in blocks])[b_order]
        return Block(**out)

    def split(self, n_req: int) -> tuple[Block, Block | None]:
        """(the first n_req requests, the rest)."""
        if n_req >= self.arr.shape[0]:
            return self, None
        nb = int(np.searchsorted(self.b_req, n_req, side="left"))
        head: dict[str, np.ndarray] = {"b_req": self.b_req[:nb]}
        tail: dict[str, np.ndarray] = {"b_req": self.b_req[nb:] - n_req}
        for name in Block.REQUEST:
            value = getattr(self, name)
            head[name], tail[name] = value[:n_req], value[n_req:]
        for name in Block.BATCH:
            value = getattr(self, name)
            head[name], tail[name] = value[:nb], value[nb:]
        return Block(**head), Block(**tail)


class Session:
    """A follower's fetch loop towards one leader (all the partitions it follows there)."""

    def __init__(
        self,
        follower: int,
        leader: int,
        parts: list[int],
        every: bool,
        links: tuple[Draws, Draws],
        start_ms: float,
    ):
        self.follower = follower
        self.leader = leader
        self.parts = parts
        self.every = every  # covers every partition of the leader: every request is its own
        self.out, self.back = links  # leader -> follower, follower -> leader
        # a fetch request, and an answer without records, carry the partitions' fields
        self.fields_bytes = FETCH_REQUEST_BYTES + PARTITION_FIELDS_BYTES * len(parts)
        self.A: list[float] = []  # append times of the requests it fetches
        self.CB: list[float] = [0.0]  # cumulative bytes it fetches
        self.gidx = Grow(np.int64)  # leader request index of each (when not every)
        self.g = start_ms + self.back.delay(self.fields_bytes)  # the first fetch arrives
        self.last = self.g
        self.c = 0
        self.G = Grow(np.float64)  # fetch arrivals at the leader ...
        self.M = Grow(np.int64)  # ... telling it the follower holds this many requests
        self.G.extend(np.array([self.g]))
        self.M.extend(np.array([0]))
        self.gm_from = 0  # G/M entries before are no longer needed


class PartLog:
    """One partition's log as the planner knows it: its batches (where they came from, their
    records and bytes) and when the high watermark passed them."""

    def __init__(self) -> None:
        self.b_req = Grow(np.int64)  # leader request of each batch
        self.b_conn = Grow(np.int64)  # connection and ...
        self.b_cbi = Grow(np.int64)  # ... batch number there
        self.cnt: list[int] = [0]  # records up to each batch end (final batches only)
        self.cb: list[float] = [0.0]  # bytes up to each batch end (final batches only)
        self.commit: list[float] = []  # when the HW passed each final batch
        self.pending_cnt = Grow(np.int64)  # batches appended, not final: record counts
        self.pending_bytes = Grow(np.float64)
        self.n_batches = 0
        self.n_final = 0
        self.records = 0
        self.total_bytes = 0.0
        self.leo = Steps()
        self.hw = Steps()
        self.delivered = Steps()
        self.list_base = 0  # batches dropped from the head of cnt/cb/commit


class CLoop:
    """A consumer's fetch loop for one partition it owns."""

    def __init__(self, consumer: int, partition: int, to: Draws, back: Draws, start_ms: float):
        self.consumer = consumer
        self.partition = partition
        self.to = to
        self.back = back
        self.s = start_ms  # the next fetch leaves at s ...
        self.g: float | None = None  # ... and reaches the leader at g (once drawn)
        self.off = 0  # final batches consumed (absolute)
        self.busy = -INF
        self.last = -INF
