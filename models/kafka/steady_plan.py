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
from models.kafka.cluster import FEED_MS, KEY_BYTES, hash_partition
from models.kafka.placement import replicas_of
from models.kafka.produce import DEFER_MS
from models.kafka.steady_loops import FetchLoops
from models.kafka.steady_parts import Draws, Fallback, Grow, Sums, ThreadCheck
from models.kafka.steady_state import INF, Block, CLoop, Conn, PartLog, Session
from models.kafka.store import BATCH_OVERHEAD_BYTES, RECORD_OVERHEAD_BYTES

if TYPE_CHECKING:
    from simulator.network import Network

ANSWER_BYTES = 100.0  # a produce answer (producer_answers.receive_answer)
_NONE = np.empty(0)  # per-record sizes when every record has the same size
KEY_TABLE_MAX = 4_000_000  # keys up to this many: partition and connection by table lookup


class Planner(FetchLoops):
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
        self.replicas = [replicas_of(p, self.B, R) for p in range(self.P)]
        self.lead_of = np.array([r[0] for r in self.replicas], dtype=np.int64)
        self.n_producers = spec.workload.producers
        # key -> partition and key -> connection (producer x leader), when the keys are few
        self.key_part: np.ndarray | None = None
        self.key_conn: np.ndarray | None = None
        if spec.workload.keys <= KEY_TABLE_MAX:
            all_keys = np.arange(spec.workload.keys, dtype=np.int64)
            key_part = hash_partition(all_keys, self.P)
            small = np.int16 if self.n_producers * self.B < 32_768 and self.P < 32_768 else np.int32
            self.key_part = key_part.astype(small)
            self.key_conn = (
                (all_keys % self.n_producers) * self.B + self.lead_of[key_part]
            ).astype(small)
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
        workload = spec.workload
        fixed = workload.value_bytes_distribution == "fixed" or workload.value_bytes == 0
        # with one message size (cluster._feed adds the key and the record overhead) the bytes
        # of a batch are its records x that size: no per-record sizes are kept
        self.record_bytes = (
            float(workload.value_bytes + KEY_BYTES + RECORD_OVERHEAD_BYTES) if fixed else None
        )
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
                    links = (draws(f"broker{lb}", f"broker{f}"), draws(f"broker{f}", f"broker{lb}"))
                    every = len(parts) == len(self.led[lb])
                    mine.append(Session(f, lb, parts, every, links, start))
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
                    owner,
                    p,
                    draws(f"consumer{owner}", f"broker{lb}"),
                    draws(f"broker{lb}", f"consumer{owner}"),
                    start,
                )
            )
        self.win_ack = Grow(np.float64)  # acknowledgement time by id (from the first one)
        self.win_dlv = Grow(np.float64)  # delivery time by id
        self.bytes_in = Sums()
        self.bytes_out = Sums()
        self.produce_count = Sums()
        self.H = -INF
        self.done_at = start
        self.max_ack_ms = 0.0
        # per request: (producer, send() time of its oldest record, bytes) for _check_buffer
        self.buffer_req: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    # --- records in -------------------------------------------------------------------------------
    def add_records(
        self, first: int, times: np.ndarray, keys: np.ndarray, sizes: np.ndarray | None
    ) -> None:
        """Records sent (send()) by the producers, ids from `first` on: to their connections.
        Every key goes to one partition (key hash) and is sent by one producer (key %
        producers, as cluster._feed): one lookup gives both."""
        if self.key_part is not None and self.key_conn is not None:
            parts = self.key_part[keys]
            conn = self.key_conn[keys]
        else:
            parts = hash_partition(keys, self.P).astype(np.int32)
            conn = (keys % self.n_producers).astype(np.int32) * self.B + self.lead_of[parts]
        n_conn = len(self.conns)
        order = np.argsort(conn, kind="stable")
        counts = np.bincount(conn, minlength=n_conn)
        bounds = np.concatenate(([0], np.cumsum(counts)))
        s_t, s_p = times[order], parts[order]
        s_s = sizes[order] if sizes is not None else _NONE
        s_ids = order + first  # the ids of one pull are consecutive
        for k in np.flatnonzero(counts).tolist():
            a, b = int(bounds[k]), int(bounds[k + 1])
            self.conns[k].add(s_t[a:b], s_ids[a:b], s_p[a:b], s_s[a:b])
        n = times.shape[0]
        self.win_ack.grow(n)  # written before they are read (flush)
        self.win_dlv.grow(n)

    def _check_buffer(self, final: bool) -> None:
        """buffer.memory holds the records from their feed (cluster.FEED_MS ahead of their
        send()) to their acknowledgement: the bytes sent within any stretch of the longest
        acknowledgement time plus FEED_MS must fit, or a producer could block in send(). Counted
        per request at its oldest record's send() time, with the stretch widened by linger.ms
        (the records of one request were sent within it): an upper bound."""
        if not self.buffer_req:
            return
        prod = np.concatenate([p for p, _, _ in self.buffer_req])
        t = np.concatenate([t for _, t, _ in self.buffer_req])
        nbytes = np.concatenate([b for _, _, b in self.buffer_req])
        w = int(np.ceil(self.max_ack_ms + FEED_MS + self.linger)) + 2
        t0 = float(np.floor(t.min()))
        width = int(np.floor(t.max() - t0)) + 1
        bins = np.bincount(
            prod * width + (t - t0).astype(np.int64),
            weights=nbytes,
            minlength=self.n_producers * width,
        ).reshape(self.n_producers, width)
        cum = np.concatenate((np.zeros((self.n_producers, 1)), np.cumsum(bins, axis=1)), axis=1)
        held = cum[:, w:] - cum[:, :-w] if width > w else cum[:, -1:]
        if float(held.max()) > self.buffer_memory:
            raise Fallback("buffer.memory could fill up (a producer would block in send())")
        if not final:  # keep what the next check's stretches reach back to
            keep = t > t0 + width - w - 1
            self.buffer_req = [(prod[keep], t[keep], nbytes[keep])]

    # --- one planning step ------------------------------------------------------------------------
    def advance(self, until: float, final: bool, flush_at: float | None = None) -> None:
        """Plan everything the records sent up to `until` decide (all of it when `final`)."""
        # the horizon: no request planned later can reach its leader before it
        H = min(self._plan_sends(conn, until, flush_at) for conn in self.conns)
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
        # the records that can open a request sent by `until`, read through a memoryview
        # (Python floats without converting the array, and bisect searches it)
        m = min(n, int(T.searchsorted(until - linger, side="right")) + 1)
        Tl = np.ascontiguousarray(T[:m]).data
        los: list[int] = []
        sends: list[float] = []
        j = 0
        while j < m:
            s = Tl[j] + linger
            if s > until:
                break
            los.append(j)
            sends.append(s)
            j = bisect_right(Tl, s, j)
            if j == m and m < n:  # the request takes records beyond the list
                j = int(T.searchsorted(s, side="right"))
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
        cell_bytes: np.ndarray
        if self.record_bytes is None:
            cell_bytes = np.bincount(key, weights=conn.size[:j], minlength=cells)
        else:
            cell_bytes = cell_count * self.record_bytes
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
        conn.req_end.extend(conn.sent_records + np.append(lo[1:], j))  # records up to each end
        conn.req_batch.extend(cbi0 + np.searchsorted(b_req, np.arange(K)))
        conn.sent_records += j
        record_bytes = np.bincount(b_req, weights=b_bytes, minlength=K)
        self.buffer_req.append((np.full(K, conn.producer), conn.t[lo], record_bytes))
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
                arr=arr,
                nbytes=nbytes,
                conn=np.full(K, k, dtype=np.int64),
                seq=np.arange(seq0, seq0 + K),
                first_t=conn.t[lo],
                b_req=b_req,
                b_part=b_part,
                b_count=b_count,
                b_bytes=b_bytes,
                b_cbi=np.arange(cbi0, cbi0 + nb),
                b_conn=np.full(nb, k, dtype=np.int64),
            )
        )
        conn.t, conn.ids, conn.part, conn.size = (
            conn.t[j:],
            conn.ids[j:],
            conn.part[j:],
            conn.size[j:],
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
            # requests [flushed_seq, done) are done: their records are the next ones
            seq0 = conn.flushed_seq
            if done <= seq0:
                lowest = min(lowest, float(conn.r_ids.view(k0, k0 + 1)[0]))
                continue
            ends = conn.req_end.view(seq0, done)
            n = int(ends[-1]) - k0
            if k0 + n < k1:
                lowest = min(lowest, float(conn.r_ids.view(k0 + n, k0 + n + 1)[0]))
            counts = np.diff(ends, prepend=k0)
            at = win_ack.first
            ids = conn.r_ids.view(k0, k0 + n) - at
            win_ack.view(at, len(win_ack))[ids] = np.repeat(conn.answers.view(seq0, done), counts)
            if consumers:
                b_first = conn.dlv.first  # the batches still kept
                c = conn.r_cbi.view(k0, k0 + n) - b_first
                times = conn.dlv.view(b_first, len(conn.dlv))[c]
                if proc > 0.0:
                    place = conn.dlv_pos.view(b_first, len(conn.dlv_pos))[c]
                    times = times + proc * (place + conn.r_rank.view(k0, k0 + n) + 1.0)
                win_dlv.view(at, len(win_dlv))[ids] = times
            conn.flushed = k0 + n
            conn.flushed_seq = done
            conn.r_ids.drop_before(k0 + n)
            conn.r_cbi.drop_before(k0 + n)
            conn.req_end.drop_before(done)
            if proc > 0.0:
                conn.r_rank.drop_before(k0 + n)
            # batches of the requests handed over (and, with consumers, delivered)
            keep = conn.req_first_batch(done)
            conn.req_batch.drop_before(done)
            if consumers:
                keep = min(keep, conn.delivered_batches)
            conn.b_seq.drop_before(keep)
            conn.dlv.drop_before(keep)
            conn.dlv_pos.drop_before(keep)
        first = win_ack.first
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
