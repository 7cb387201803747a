"""The steady-state planner's stages: producers' senders, leaders' appends, follower fetch loops,
the high watermark, answers, consumers' fetch loops (steady.py drives them).

Each stage runs as far as its inputs are complete. The horizon `H` is the earliest time a
produce request not yet planned could reach its leader (the next linger expiry of any
connection): every append before `H` is known, so every follower fetch answered before `H`,
every high-watermark advance before `H` and every consumer answer before `H` is known too (a
later append can only be answered, committed and delivered after it arrives). The same
mechanisms as the event engine (models/kafka/broker.py, replication.py, producer.py,
consumer_fetch.py) give the times:

- a connection's sender drains every partition of the leader when the oldest batch is
  `linger.ms` old: one ProduceRequest; it arrives after the link's delay (TCP keeps order);
- the leader appends on arrival (no thread is ever busy: checked) and answers when its I/O
  thread is done (acks=1) or when the high watermark passes every batch (acks=all);
- a follower's fetch waits at the leader for the next append (or `replica.fetch.wait.max.ms`),
  is answered with everything appended by then, and the follower's next fetch tells the leader
  its new log end: the high watermark of a partition is where every follower's fetch has told
  the leader it is (the ISR is every replica: nothing ever falls behind);
- a consumer's fetch waits for the high watermark to pass its position (or
  `fetch.max.wait.ms`), the answer carries everything below it, and the next fetch leaves when
  the last poll of the answer starts.

What the event engine would do differently is checked, and the run falls back to it
(`Fallback`): a thread busy when a request arrives, a batch reaching `batch.size`, a request
reaching `max.request.size`, `max.in.flight.requests.per.connection` answers outstanding,
`buffer.memory` possibly full, a request or record older than its timeout, a fetch answer larger
than its byte limit, or a read that could miss the page cache.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING, Any

import numpy as np

from models.kafka import protocol as pr
from models.kafka.capacity import NETWORK_SHARE
from models.kafka.cluster import FEED_MS
from models.kafka.consumer_cursor import FETCH_BYTES
from models.kafka.produce import DEFER_MS
from models.kafka.replication import FETCH_REQUEST_BYTES, PARTITION_FIELDS_BYTES
from models.kafka.steady_parts import Draws, Fallback, Grow, Steps, Sums, ThreadCheck
from models.kafka.store import BATCH_OVERHEAD_BYTES

if TYPE_CHECKING:
    from simulator.network import Network

INF = float("inf")
ANSWER_BYTES = 100.0  # a produce answer (producer_answers.receive_answer)
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
        self.flushed = 0  # records handed to the history
        self.delivered_batches = 0  # batches before this one all reached their consumer
        self.checked = 0  # requests checked against the in-flight limit

    def add(self, t: np.ndarray, ids: np.ndarray, part: np.ndarray, size: np.ndarray) -> None:
        self.new.append((t, ids, part, size))

    def gather(self) -> None:
        """Records added since the last planning step join those waiting."""
        if not self.new:
            return
        chunks = [(self.t, self.ids, self.part, self.size), *self.new] if self.t.shape[0] else self.new
        self.new = []
        if len(chunks) == 1:
            self.t, self.ids, self.part, self.size = chunks[0]
            return
        self.t = np.concatenate([c[0] for c in chunks])
        self.ids = np.concatenate([c[1] for c in chunks])
        self.part = np.concatenate([c[2] for c in chunks])
        self.size = np.concatenate([c[3] for c in chunks])


class Block:
    """Produce requests on their way to one leader, sorted by arrival, with their batches (in
    request order, partitions ascending)."""

    __slots__ = ("arr", "b_bytes", "b_cbi", "b_conn", "b_count", "b_part", "b_req", "conn",
                 "first_t", "nbytes", "seq")  # fmt: skip
    REQ = ("arr", "nbytes", "conn", "seq", "first_t")
    BATCH = ("b_part", "b_count", "b_bytes", "b_cbi", "b_conn")

    def __init__(self, **arrays: np.ndarray):
        for name, value in arrays.items():
            setattr(self, name, value)

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
        for name in Block.REQ:
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
        for name in Block.REQ:
            value = getattr(self, name)
            head[name], tail[name] = value[:n_req], value[n_req:]
        for name in Block.BATCH:
            value = getattr(self, name)
            head[name], tail[name] = value[:nb], value[nb:]
        return Block(**head), Block(**tail)


class Session:
    """A follower's fetch loop towards one leader (all the partitions it follows there)."""

    def __init__(self, follower: int, leader: int, parts: list[int], every: bool, out: Draws,
                 back: Draws, start_ms: float):  # fmt: skip
        self.follower = follower
        self.leader = leader
        self.parts = parts
        self.every = every  # covers every partition of the leader: every request is its own
        self.out = out  # leader -> follower
        self.back = back  # follower -> leader
        self.request_bytes = FETCH_REQUEST_BYTES + PARTITION_FIELDS_BYTES * len(parts)
        self.fields_bytes = FETCH_REQUEST_BYTES + PARTITION_FIELDS_BYTES * len(parts)
        self.A: list[float] = []  # append times of the requests it fetches
        self.CB: list[float] = [0.0]  # cumulative bytes it fetches
        self.gidx = Grow(np.int64)  # leader request index of each (when not every)
        self.g = start_ms + back.delay(self.request_bytes)  # the first fetch reaches the leader
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


class Planner:
    """The stages, their state and their checks (driven by SteadyKafka)."""

    def __init__(self, model: Any):
        self.model = model
        ctx = model.ctx
        cfg = model.config
        spec = model.spec
        net: Network = ctx.network
        self.B = cfg.brokers
        self.P = cfg.topic.partitions
        R = cfg.topic.replication_factor
        self.replicas = [[(p + i) % self.B for i in range(R)] for p in range(self.P)]
        self.lead_of = np.array([r[0] for r in self.replicas], dtype=np.int64)
        prod = cfg.producer
        self.linger = prod.linger_ms
        self.acks = prod.acks
        self.batch_limit = prod.batch_size - BATCH_OVERHEAD_BYTES
        self.max_request = prod.max_request_size
        self.inflight = prod.max_in_flight_requests_per_connection
        self.request_timeout = prod.request_timeout_ms
        self.delivery_timeout = prod.delivery_timeout_ms
        self.buffer_memory = prod.buffer_memory
        b = cfg.broker
        self.req_ms = b.request_cpu_ms
        self.net_ms = b.request_cpu_ms * NETWORK_SHARE
        self.cpu = b.cpu_ms_per_mb / 1e6
        self.replica_wait = b.replica_fetch_wait_max_ms
        self.replica_max = float(b.replica_fetch_max_bytes)
        self.replica_response_max = float(b.replica_fetch_response_max_bytes)
        self.page_cache = float(b.page_cache_bytes)
        c = cfg.consumer
        self.consumer_wait = c.fetch_max_wait_ms
        self.consumer_max = float(c.max_partition_fetch_bytes)
        self.proc = spec.workload.processing_ms
        self.polls = c.max_poll_records
        self.n_producers = spec.workload.producers
        start = ctx.env.now
        self.stop_ms = ctx.duration_ms

        def draws(a: str, b: str) -> Draws:
            return Draws(net.link(a, b))

        self.conns = [
            Conn(i, lb, draws(f"producer{i}", f"broker{lb}"), draws(f"broker{lb}", f"producer{i}"))
            for i in range(self.n_producers)
            for lb in range(self.B)
        ]
        self.parts = [PartLog() for _ in range(self.P)]
        self.led = [[p for p in range(self.P) if self.replicas[p][0] == lb] for lb in range(self.B)]
        self.sessions: list[list[Session]] = []
        for lb in range(self.B):
            mine = []
            for f in range(self.B):
                parts = [p for p in self.led[lb] if f in self.replicas[p][1:]]
                if f != lb and parts:
                    mine.append(
                        Session(
                            f, lb, parts, len(parts) == len(self.led[lb]),
                            draws(f"broker{lb}", f"broker{f}"), draws(f"broker{f}", f"broker{lb}"),
                            start,
                        )  # fmt: skip
                    )
            self.sessions.append(mine)
        self.member = np.zeros((self.B, self.P), dtype=bool)  # follower f replicates p
        for p, reps in enumerate(self.replicas):
            for f in reps[1:]:
                self.member[f, p] = True
        self.pending: list[list[Block]] = [[] for _ in range(self.B)]
        # per leader: released requests (absolute index = request number at that leader)
        self.released = [0] * self.B
        self.finalized = [0] * self.B
        self.r_arr = [Grow(np.float64) for _ in range(self.B)]
        self.r_done = [Grow(np.float64) for _ in range(self.B)]
        self.r_conn = [Grow(np.int64) for _ in range(self.B)]
        self.r_seq = [Grow(np.int64) for _ in range(self.B)]
        self.r_first = [Grow(np.float64) for _ in range(self.B)]
        self.net_check = [ThreadCheck(b.num_network_threads) for _ in range(self.B)]
        self.io_check = [ThreadCheck(b.num_io_threads) for _ in range(self.B)]
        self.net_iv: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(self.B)]
        self.io_iv: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(self.B)]
        self.queue_wait = [Sums() for _ in range(self.B)]  # I/O thread waits (queue time)
        self.handled = [Sums() for _ in range(self.B)]  # requests through the I/O threads
        self.loops: list[CLoop] = []
        for p, owner in sorted(model.owner.items()):
            lb = self.replicas[p][0]
            self.loops.append(
                CLoop(
                    owner, p, draws(f"consumer{owner}", f"broker{lb}"),
                    draws(f"broker{lb}", f"consumer{owner}"), start,
                )  # fmt: skip
            )
        self.win_ack = Grow(np.float64)  # acknowledgement time by id (from the first one)
        self.win_dlv = Grow(np.float64)  # delivery time by id
        self.bytes_in = Sums()
        self.bytes_out = Sums()
        self.produce_count = Sums()
        self.H = -INF
        self.done_at = start
        self.max_ack_ms = 0.0
        self.buffer_bins: list[tuple[float, np.ndarray]] = []  # (first ms, producer x ms bytes)

    # --- records in -------------------------------------------------------------------------------
    def add_records(
        self, ids: np.ndarray, times: np.ndarray, parts: np.ndarray, sizes: np.ndarray,
        owner: np.ndarray,
    ) -> None:  # fmt: skip
        """Records sent (send()) by the producers: to their connections."""
        B = self.B
        conn = owner * B + self.lead_of[parts]
        n_conn = len(self.conns)
        narrow = conn.astype(np.uint16) if n_conn <= 65_536 else conn
        order = np.argsort(narrow, kind="stable")
        counts = np.bincount(conn, minlength=n_conn)
        bounds = np.concatenate(([0], np.cumsum(counts)))
        s_t, s_p, s_s = times[order], parts[order], sizes[order]
        s_ids = order + int(ids[0])  # the ids of one pull are consecutive
        for k in np.flatnonzero(counts).tolist():
            a, b = int(bounds[k]), int(bounds[k + 1])
            self.conns[k].add(s_t[a:b], s_ids[a:b], s_p[a:b], s_s[a:b])
        self.win_ack.grow(ids.shape[0])  # written before they are read (flush)
        self.win_dlv.grow(ids.shape[0])
        # buffer.memory: bytes per producer and millisecond (checked in _check_buffer)
        t0 = float(np.floor(times[0])) if times.shape[0] else 0.0
        width = int(np.floor(times[-1] - t0)) + 1 if times.shape[0] else 0
        key = owner * width + (times - t0).astype(np.int64)
        bins = np.bincount(key, weights=sizes, minlength=self.n_producers * width)
        self.buffer_bins.append((t0, bins.reshape(self.n_producers, width)))

    def _check_buffer(self, final: bool) -> None:
        """buffer.memory holds the records from their feed (cluster.FEED_MS ahead of their
        send()) to their acknowledgement: the bytes sent within any stretch of the longest
        acknowledgement time plus FEED_MS must fit, or a producer could block in send()."""
        if not self.buffer_bins:
            return
        w = int(np.ceil(self.max_ack_ms + FEED_MS)) + 1
        chunks = self.buffer_bins
        start = chunks[0][0]
        span = int(chunks[-1][0] - start) + chunks[-1][1].shape[1]
        bins = np.zeros((self.n_producers, span))
        for t0, b in chunks:
            k = int(t0 - start)
            bins[:, k : k + b.shape[1]] += b
        cum = np.concatenate((np.zeros((self.n_producers, 1)), np.cumsum(bins, axis=1)), axis=1)
        held = cum[:, w:] - cum[:, :-w] if span > w else cum[:, -1:]
        if float(held.max()) > self.buffer_memory:
            raise Fallback("buffer.memory could fill up (a producer would block in send())")
        if not final:  # keep the bins the next check's windows reach back to
            keep = [c for c in chunks if c[0] + c[1].shape[1] > chunks[-1][0] - w - 1]
            self.buffer_bins = keep or chunks[-1:]

    # --- one planning step ------------------------------------------------------------------------
    def advance(self, until: float, final: bool, flush_at: float | None = None) -> None:
        """Plan everything the records sent up to `until` decide (all of it when `final`)."""
        H = INF if final else INF
        for conn in self.conns:
            lb = self._plan_sends(conn, until, flush_at)
            H = min(H, lb)
        if final:
            H = INF
        self.H = H
        for lb in range(self.B):
            self._release(lb, H)
        for lb in range(self.B):
            for session in self.sessions[lb]:
                self._run_session(session, H, final)
            self._finalize(lb)
        for loop in self.loops:
            self._run_consumer(loop, H, final)
        for lb in range(self.B):
            self._check_threads(lb, H)
        for conn in self.conns:
            self._check_inflight(conn)
        self._check_buffer(final)
        self.flush()

    # --- producers: the sender ---------------------------------------------------------------------
    def _plan_sends(self, conn: Conn, until: float, flush_at: float | None) -> float:
        """Decide the sends of `conn` up to `until` (and flush the rest at `flush_at`); returns
        the earliest time its next request could be sent."""
        conn.gather()
        T = conn.t
        n = T.shape[0]
        if not n:
            return min(until, self.stop_ms) if flush_at is None else INF
        linger = self.linger
        search = T.searchsorted
        los: list[int] = []
        sends: list[float] = []
        j = 0
        while j < n:
            s = float(T[j]) + linger
            if s > until:
                break
            los.append(j)
            sends.append(s)
            j = int(search(s, side="right"))
        if flush_at is not None and j < n:
            los.append(j)
            sends.append(flush_at)
            j = n
        if los:
            self._requests(conn, np.array(los, dtype=np.int64), np.array(sends), j)
        if flush_at is not None:
            return INF
        # the producers flush (close()) at the end of the measured phase at the latest
        return min(float(T[j]) + linger if j < n else until, self.stop_ms)

    def _requests(self, conn: Conn, lo: np.ndarray, sends: np.ndarray, j: int) -> None:
        """Requests `lo` (first record of each) sent at `sends`, taking records [0, j)."""
        P = self.P
        K = lo.shape[0]
        counts = np.diff(np.append(lo, j))
        rec_req = np.repeat(np.arange(K), counts)
        key = rec_req * P + conn.part[:j]
        cells = K * P
        cell_count = np.bincount(key, minlength=cells)
        cell_bytes = np.bincount(key, weights=conn.size[:j], minlength=cells)
        cell = np.flatnonzero(cell_count)  # one batch per (request, partition) with records
        b_req, b_part = np.divmod(cell, P)
        b_count = cell_count[cell]
        b_bytes = cell_bytes[cell]
        if float(b_bytes.max()) > self.batch_limit:
            raise Fallback("a batch reached batch.size (the sender would not wait for linger.ms)")
        nbytes = pr.REQUEST_HEADER_BYTES + np.bincount(
            b_req, weights=b_bytes + BATCH_OVERHEAD_BYTES, minlength=K
        )
        if float(nbytes.max()) >= self.max_request:
            raise Fallback("a produce request reached max.request.size")
        arr = sends + conn.out.delays(nbytes)
        arr = np.maximum.accumulate(np.concatenate(([conn.last_arrival], arr)))[1:]
        conn.last_arrival = float(arr[-1])
        seq0 = len(conn.sends)
        cbi0 = len(conn.b_seq)
        conn.sends.extend(sends)
        conn.b_seq.extend(b_req + seq0)
        nb = cell.shape[0]
        conn.dlv.extend(np.full(nb, np.nan))
        conn.dlv_pos.extend(np.zeros(nb, dtype=np.int64))
        # the records on their way: their batch (and place in it, for processing times)
        batch_of_cell = np.zeros(cells, dtype=np.int64)
        batch_of_cell[cell] = np.arange(cbi0, cbi0 + nb)
        conn.r_ids.extend(conn.ids[:j])
        conn.r_cbi.extend(batch_of_cell[key])
        if self.proc > 0.0:
            order = np.argsort(key, kind="stable")
            first = np.repeat(np.cumsum(b_count) - b_count, b_count)
            rank = np.empty(j, dtype=np.int64)
            rank[order] = np.arange(j) - first
            conn.r_rank.extend(rank)
        if self.acks == "0":
            conn.answers.extend(sends)  # acknowledged when handed to the network
            self.done_at = max(self.done_at, float(sends[-1]))
        k = conn.producer * self.B + conn.leader
        self.pending[conn.leader].append(
            Block(
                arr=arr, nbytes=nbytes, conn=np.full(K, k, dtype=np.int64),
                seq=np.arange(seq0, seq0 + K), first_t=conn.t[lo], b_req=b_req, b_part=b_part,
                b_count=b_count, b_bytes=b_bytes, b_cbi=np.arange(cbi0, cbi0 + nb),
                b_conn=np.full(nb, k, dtype=np.int64),
            )  # fmt: skip
        )
        conn.t, conn.ids, conn.part, conn.size = (
            conn.t[j:], conn.ids[j:], conn.part[j:], conn.size[j:]
        )

    # --- leaders: appends -------------------------------------------------------------------------
    def _release(self, lb: int, H: float) -> None:
        """Requests reaching leader `lb` by `H` are appended, in arrival order."""
        blocks = self.pending[lb]
        if not blocks:
            return
        block = Block.merge(blocks)
        n_rel = int(np.searchsorted(block.arr, H, side="right"))
        head, tail = block.split(n_rel)
        self.pending[lb] = [tail] if tail is not None else []
        if not n_rel:
            return
        base = self.released[lb]
        self.released[lb] = base + n_rel
        arr = head.arr
        done = arr + self.net_ms + self.req_ms + head.nbytes * self.cpu
        self.r_arr[lb].extend(arr)
        self.r_done[lb].extend(done)
        self.r_conn[lb].extend(head.conn)
        self.r_seq[lb].extend(head.seq)
        self.r_first[lb].extend(head.first_t)
        self.net_iv[lb].append((arr, arr + self.net_ms))
        self.io_iv[lb].append((arr + self.net_ms, done))
        self.bytes_in.add(arr, head.nbytes)
        self.produce_count.add(arr, np.ones(n_rel))
        self.handled[lb].add(arr, np.ones(n_rel))
        b_req_abs = head.b_req + base
        # the partitions' logs: batches of each partition in request order
        b_part = head.b_part
        order = np.argsort(b_part, kind="stable")
        counts = np.bincount(b_part, minlength=self.P)
        bounds = np.concatenate(([0], np.cumsum(counts)))
        for p in self.led[lb]:
            a, b = int(bounds[p]), int(bounds[p + 1])
            if a == b:
                continue
            sel = order[a:b]
            part = self.parts[p]
            cnt = head.b_count[sel]
            part.b_req.extend(b_req_abs[sel])
            part.b_conn.extend(head.b_conn[sel])
            part.b_cbi.extend(head.b_cbi[sel])
            part.pending_cnt.extend(cnt)
            part.pending_bytes.extend(head.b_bytes[sel])
            part.n_batches += b - a
            before = part.records
            part.records += int(cnt.sum())
            part.total_bytes += float(head.b_bytes[sel].sum())
            part.leo.add(arr[head.b_req[sel]], before + np.cumsum(cnt))
            if part.total_bytes * max(1, len(self.led[lb])) > self.page_cache:
                raise Fallback("a consumer read could miss the page cache")
        # the follower sessions' view: the requests each of them fetches
        for s in self.sessions[lb]:
            if s.every:
                s.A.extend(arr.tolist())
                per = np.bincount(head.b_req, weights=head.b_bytes, minlength=n_rel)
            else:
                mask = self.member[s.follower][b_part]
                touched = np.bincount(head.b_req, weights=mask, minlength=n_rel) > 0
                per = np.bincount(head.b_req, weights=head.b_bytes * mask, minlength=n_rel)
                s.A.extend(arr[touched].tolist())
                s.gidx.extend(np.flatnonzero(touched) + base)
                per = per[touched]
            if per.shape[0]:
                if float(per.max()) > self.replica_max:
                    raise Fallback("a follower fetch would exceed replica.fetch.max.bytes")
                s.CB.extend((s.CB[-1] + np.cumsum(per)).tolist())

    # --- followers: fetch loops -------------------------------------------------------------------
    def _run_session(self, s: Session, H: float, final: bool) -> None:
        A, CB = s.A, s.CB
        nA = len(A)
        g, c, last = s.g, s.c, s.last
        wait = self.replica_wait
        cpu, net_ms, req_ms = self.cpu, self.net_ms, self.req_ms
        fields, size = s.fields_bytes, s.request_bytes
        out, back = s.out, s.back
        # iterations: one per append at most, plus one per fetch that expires
        reach = min(H, A[-1]) if nA else g
        need = nA - c + 4 + (int((reach - g) / wait) if reach > g else 0)
        out_pop = out.ensure(need).pop
        back_pop = back.ensure(need).pop
        out_base, out_mpb = out.base, out.ms_per_byte
        back_base, back_fixed = back.base, size * back.ms_per_byte
        G: list[float] = []
        M: list[int] = []
        R: list[float] = []
        NB: list[float] = []
        while True:
            if c < nA and A[c] <= g:
                if g > H:
                    break
                m = bisect_right(A, g, c)
                r = g
            else:
                if c >= nA and final:
                    break
                deadline = g + wait
                if c < nA:
                    ac = A[c]
                    if ac <= deadline:
                        r = ac
                        m = bisect_right(A, ac, c)
                    else:
                        r, m = deadline, c
                elif deadline <= H:
                    r, m = deadline, c
                else:
                    break
            nb = fields + CB[m] - CB[c]
            g2 = r + nb * cpu + (out_base * out_pop() + nb * out_mpb)
            g2 += back_base * back_pop() + back_fixed
            if g2 < last:
                g2 = last
            last = g2
            G.append(g2)
            M.append(m)
            R.append(r)
            NB.append(nb)
            c, g = m, g2
        s.g, s.c, s.last = g, c, last
        if not G:
            return
        lb = s.leader
        Ga = np.array(G)
        Ra = np.array(R)
        NBa = np.array(NB)
        if float(NBa.max()) - fields > self.replica_response_max:
            raise Fallback("a follower fetch would exceed replica.fetch.response.max.bytes")
        s.G.extend(Ga)
        s.M.extend(np.array(M, dtype=np.int64))
        self.bytes_out.add(Ra, NBa)
        self.net_iv[lb].append((Ra, Ra + NBa * cpu))
        self.net_iv[lb].append((Ga, Ga + net_ms))
        self.io_iv[lb].append((Ga + net_ms, Ga + net_ms + req_ms))
        self.handled[lb].add(Ga, np.ones(Ga.shape[0]))

    # --- the high watermark, answers --------------------------------------------------------------
    def _learned(self, s: Session, idx: np.ndarray) -> np.ndarray:
        """When the leader learned that the follower of `s` holds request `idx` (session-local
        index): the arrival of its first fetch past it."""
        M = s.M.view(s.gm_from, len(s.M))
        G = s.G.view(s.gm_from, len(s.G))
        k = np.searchsorted(M, idx, side="right")
        return G[k]

    def _session_final(self, s: Session, lb: int) -> int:
        """Leader requests below this index are held by the follower of `s` as far as the
        leader knows."""
        held = int(s.M.view(len(s.M) - 1, len(s.M))[0])
        if s.every:
            return held
        n = len(s.gidx)
        return int(s.gidx.view(held, held + 1)[0]) if held < n else self.released[lb]

    def _finalize(self, lb: int) -> None:
        """Requests whose batches the HW passed (as far as known): commits, answers, acks."""
        lo = self.finalized[lb]
        hi = self.released[lb]
        for s in self.sessions[lb]:
            hi = min(hi, self._session_final(s, lb))
        if hi <= lo:
            return
        self.finalized[lb] = hi
        arr = self.r_arr[lb].view(lo, hi)
        commit_req = arr.copy()  # replication factor 1: committed on append
        # per partition: its batches of these requests, committed when every follower has them
        for p in self.led[lb]:
            part = self.parts[p]
            k0, k1 = part.n_final, part.n_batches
            if k0 == k1:
                continue
            reqs = part.b_req.view(k0, k1)
            n_new = int(np.searchsorted(reqs, hi, side="left"))
            if not n_new:
                continue
            reqs = reqs[:n_new]
            commit = arr[reqs - lo]
            for s in self.sessions[lb]:
                if p not in s.parts:
                    continue
                idx = reqs if s.every else np.searchsorted(s.gidx.view(0, len(s.gidx)), reqs)
                commit = np.maximum(commit, self._learned(s, idx))
            np.maximum.at(commit_req, reqs - lo, commit)
            cnt = part.pending_cnt.view(k0, k0 + n_new)
            byt = part.pending_bytes.view(k0, k0 + n_new)
            ends = part.cnt[-1] + np.cumsum(cnt)
            part.cnt.extend(ends.tolist())
            part.cb.extend((part.cb[-1] + np.cumsum(byt)).tolist())
            part.commit.extend(commit.tolist())
            part.n_final = k0 + n_new
            part.pending_cnt.drop_before(part.n_final)
            part.pending_bytes.drop_before(part.n_final)
            part.b_req.drop_before(part.n_final)
            part.hw.add(commit, ends)
            self.done_at = max(self.done_at, float(commit[-1]))
        for s in self.sessions[lb]:
            # fetches the next requests' lookups will not need
            first = lo if s.every else int(np.searchsorted(s.gidx.view(0, len(s.gidx)), hi))
            keep = int(np.searchsorted(s.M.view(0, len(s.M)), hi if s.every else first, "right"))
            s.gm_from = max(s.gm_from, keep - 1, 0)
        if self.acks == "0":
            return
        done = self.r_done[lb].view(lo, hi)
        at = done if self.acks == "1" else np.maximum(commit_req, done)
        conn_of = self.r_conn[lb].view(lo, hi)
        seq_of = self.r_seq[lb].view(lo, hi)
        first_t = self.r_first[lb].view(lo, hi)
        for k in np.unique(conn_of).tolist():
            sel = np.flatnonzero(conn_of == k)
            conn = self.conns[k]
            if int(seq_of[sel[0]]) != len(conn.answers):
                raise AssertionError("answers must be planned in send order")
            t = at[sel]
            order = np.argsort(t, kind="stable")
            got = t[order] + conn.back.delays(np.full(sel.shape[0], ANSWER_BYTES))
            got = np.maximum.accumulate(np.concatenate(([conn.last_answer], got)))[1:]
            conn.last_answer = float(got[-1])
            arrival = np.empty_like(got)
            arrival[order] = got
            conn.answers.extend(arrival)
            self.done_at = max(self.done_at, conn.last_answer)
            waited = float((arrival - first_t[sel]).max())
            if waited > self.max_ack_ms:
                self.max_ack_ms = waited
                if waited >= self.delivery_timeout:
                    raise Fallback("a record waited longer than delivery.timeout.ms")
            sent = conn.sends.view(int(seq_of[sel[0]]), int(seq_of[sel[-1]]) + 1)
            if float((arrival - sent).max()) >= self.request_timeout:
                raise Fallback("a request waited longer than request.timeout.ms")
        for table in (self.r_arr, self.r_done, self.r_conn, self.r_seq, self.r_first):
            table[lb].drop_before(hi)

    def _check_inflight(self, conn: Conn) -> None:
        """A send needs fewer than max.in.flight unanswered requests on its connection."""
        limit = self.inflight
        if self.acks == "0":
            return
        hi = min(len(conn.answers), len(conn.sends) - limit)
        lo = conn.checked
        if hi <= lo:
            return
        answers = conn.answers.view(lo, hi)
        sends = conn.sends.view(lo + limit, hi + limit)
        if bool((answers > sends).any()):
            raise Fallback("max.in.flight.requests.per.connection answers were outstanding")
        conn.checked = hi
        conn.sends.drop_before(hi)

    # --- consumers --------------------------------------------------------------------------------
    def _run_consumer(self, loop: CLoop, H: float, final: bool) -> None:
        part = self.parts[loop.partition]
        lb = self.replicas[loop.partition][0]
        base = part.list_base
        commit, cnt, cb = part.commit, part.cnt, part.cb
        nfinal = len(commit)
        off = loop.off - base
        g, s, busy, last = loop.g, loop.s, loop.busy, loop.last
        wait = self.consumer_wait
        cpu = self.cpu
        proc = self.proc
        polls = self.polls
        to, back = loop.to, loop.back
        # iterations: one per committed batch at most, plus one per fetch that expires
        reach = min(H, commit[-1]) if nfinal else (s if g is None else g)
        start_t = s if g is None else g
        need = nfinal - off + 4 + (int((reach - start_t) / wait) if reach > start_t else 0)
        to_pop = to.ensure(need).pop
        back_pop = back.ensure(need).pop
        to_base, to_fixed = to.base, FETCH_BYTES * to.ms_per_byte
        back_base, back_mpb = back.base, back.ms_per_byte
        T: list[float] = []  # answer times at the leader
        NB: list[float] = []
        deliveries: list[tuple[int, int, float]] = []  # (first batch, end batch, start)
        while True:
            if g is None:
                g = s + (to_base * to_pop() + to_fixed)
            if off < nfinal and commit[off] <= g:
                if g > H:
                    break
                k = bisect_right(commit, g, off)
                t = g
            else:
                if off >= nfinal and final:
                    break
                deadline = g + wait
                if off < nfinal:
                    h = commit[off]
                    if h <= deadline:
                        t = h
                        k = bisect_right(commit, h, off)
                    else:
                        t, k = deadline, off
                elif deadline <= H:
                    t, k = deadline, off
                else:
                    break
            nb = cb[k] - cb[off] + FETCH_BYTES
            arrival = t + nb * cpu + (back_base * back_pop() + nb * back_mpb)
            if arrival < last:
                arrival = last
            last = arrival
            T.append(t)
            NB.append(nb)
            if k == off:
                s, g = arrival, None
                continue
            n = cnt[k] - cnt[off]
            start = arrival if arrival > busy else busy
            if proc <= 0.0:
                busy = start
                nxt = start
            else:
                last_poll = n % polls or polls
                busy = start + proc * n
                nxt = start + proc * (n - last_poll)
            deliveries.append((off + base, k + base, start))
            off = k
            s, g = (nxt if nxt > arrival else arrival), None
        loop.g, loop.s, loop.busy, loop.last = g, s, busy, last
        loop.off = off + base
        if T:
            Ta = np.array(T)
            NBa = np.array(NB)
            if float(NBa.max()) - FETCH_BYTES > self.consumer_max:
                raise Fallback("a consumer fetch would exceed max.partition.fetch.bytes")
            self.bytes_out.add(Ta, NBa)
            self.net_iv[lb].append((Ta, Ta + NBa * cpu))
        if deliveries:
            self._deliver(part, deliveries)
        if off > 4096:  # drop what the loop has consumed
            del commit[:off], cnt[:off], cb[:off]
            part.list_base += off

    def _deliver(self, part: PartLog, deliveries: list[tuple[int, int, float]]) -> None:
        """Answers that reached the consumer: when each batch's records start processing."""
        first, end = deliveries[0][0], deliveries[-1][1]
        lens = np.array([e - f for f, e, _ in deliveries])
        starts = np.array([st for _, _, st in deliveries])
        times = np.repeat(starts, lens)  # per batch
        conns = part.b_conn.view(first, end)
        cbis = part.b_cbi.view(first, end)
        base = part.list_base
        cnt = np.array(part.cnt[first - base : end - base + 1])
        ends = cnt[np.cumsum(lens)]  # records delivered after each answer
        if self.proc > 0.0:
            # records are processed one after the other from the answer's start
            bounds = np.concatenate(([0], np.cumsum(lens)))
            answer_first = cnt[bounds[:-1]]  # records before each answer
            pos = cnt[:-1] - np.repeat(answer_first, lens)
            n_rec = ends - answer_first
            total = int(n_rec.sum())
            within = np.arange(total) - np.repeat(np.cumsum(n_rec) - n_rec, n_rec)
            rec_times = np.repeat(starts, n_rec) + self.proc * (within + 1.0)
            part.delivered.add(rec_times, np.arange(int(cnt[0]) + 1, int(cnt[-1]) + 1))
            last = float(rec_times[-1])
        else:
            pos = np.zeros(end - first, dtype=np.int64)
            part.delivered.add(starts, ends)
            last = float(starts[-1])
        for k in np.unique(conns).tolist():
            sel = conns == k
            conn = self.conns[k]
            c = cbis[sel]
            lo = int(c.min())
            hi = int(c.max()) + 1
            view = conn.dlv.view(lo, hi)
            view[c - lo] = times[sel]
            conn.dlv_pos.view(lo, hi)[c - lo] = pos[sel]
        part.b_conn.drop_before(end)
        part.b_cbi.drop_before(end)
        self.done_at = max(self.done_at, last)

    # --- the history ------------------------------------------------------------------------------
    def flush(self) -> None:
        """Facts known for good go to the history. Per connection, records whose request was
        answered (and, with consumers, whose batch reached its consumer) write their times
        into id-indexed windows; the ids below every record still on its way then go to the
        history as one contiguous range (its fast path, in id order: per key that is the
        order of the log)."""
        consumers = bool(self.loops)
        proc = self.proc
        win_ack, win_dlv = self.win_ack, self.win_dlv
        lowest = INF  # the lowest id still on its way
        for conn in self.conns:
            k0, k1 = conn.flushed, len(conn.r_ids)
            if conn.t.shape[0]:
                lowest = min(lowest, float(conn.ids[0]))
            elif conn.new:
                lowest = min(lowest, float(conn.new[0][1][0]))
            if k0 == k1:
                continue
            done = len(conn.answers)  # requests answered
            if consumers:
                b0, b1 = conn.delivered_batches, len(conn.dlv)
                pending = np.flatnonzero(np.isnan(conn.dlv.view(b0, b1)))
                b_done = b0 + int(pending[0]) if pending.shape[0] else b1
                conn.delivered_batches = b_done
                if b_done < b1:
                    done = min(done, int(conn.b_seq.view(b_done, b_done + 1)[0]))
            cbi = conn.r_cbi.view(k0, k1)
            b_first = conn.b_seq.base + conn.b_seq.start  # the batches still kept
            rec_seq = conn.b_seq.view(b_first, len(conn.b_seq))[cbi - b_first]
            n = int(np.searchsorted(rec_seq, done, side="left"))
            if n < k1 - k0:
                lowest = min(lowest, float(conn.r_ids.view(k0 + n, k0 + n + 1)[0]))
            if not n:
                continue
            at = win_ack.base + win_ack.start
            ids = conn.r_ids.view(k0, k0 + n) - at
            win_ack.view(at, len(win_ack))[ids] = conn.answers.view(0, len(conn.answers))[
                rec_seq[:n]
            ]
            if consumers:
                c = cbi[:n] - b_first
                times = conn.dlv.view(b_first, len(conn.dlv))[c]
                if proc > 0.0:
                    place = conn.dlv_pos.view(b_first, len(conn.dlv_pos))[c]
                    times = times + proc * (place + conn.r_rank.view(k0, k0 + n) + 1.0)
                win_dlv.view(at, len(win_dlv))[ids] = times
            conn.flushed = k0 + n
            conn.r_ids.drop_before(k0 + n)
            conn.r_cbi.drop_before(k0 + n)
            if proc > 0.0:
                conn.r_rank.drop_before(k0 + n)
            # batches no record on its way belongs to (and, with consumers, delivered)
            keep = int(cbi[n:].min()) if n < cbi.shape[0] else len(conn.b_seq)
            if consumers:
                keep = min(keep, conn.delivered_batches)
            conn.b_seq.drop_before(keep)
            conn.dlv.drop_before(keep)
            conn.dlv_pos.drop_before(keep)
        first = win_ack.base + win_ack.start
        end = len(win_ack) if lowest == INF else int(lowest)
        if end <= first:
            return
        history = self.model.ctx.history
        history.ack(slice(first, end), win_ack.view(first, end))
        if consumers:
            history.deliver(slice(first, end), win_dlv.view(first, end))
        win_ack.drop_before(end)
        win_dlv.drop_before(end)

    # --- broker threads ---------------------------------------------------------------------------
    def _check_threads(self, lb: int, H: float) -> None:
        """Replay leader `lb`'s threads up to `H`. A wait of at most DEFER_MS is measured (the
        request queue time) but not added to the answer; a longer one makes the event engine
        apply the request later: fall back."""
        for ivs, check, what in (
            (self.net_iv, self.net_check, "network"),
            (self.io_iv, self.io_check, "I/O"),
        ):
            chunks = ivs[lb]
            if not chunks:
                continue
            starts = np.concatenate([a for a, _ in chunks])
            ends = np.concatenate([b for _, b in chunks])
            now = starts <= H
            later = ~now
            ivs[lb] = [(starts[later], ends[later])] if later.any() else []
            at, waited = check[lb].waits(starts[now], ends[now])
            if not waited.shape[0]:
                continue
            if float(waited.max()) > DEFER_MS:
                raise Fallback(f"a request waited for a {what} thread of broker{lb}")
            if what == "I/O":
                self.queue_wait[lb].add(at, waited)
