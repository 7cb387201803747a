"""The steady-state planner's fetch loops (a mixin of `Planner`, steady_plan.py): a follower's
fetch loop over its leader's appends and a consumer's fetch loop over the high watermark. They
are the recurrences the event engine runs as events (replication.py, consumer_fetch.py), here
as short Python loops over lists, with the jitter of each link drawn ahead.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING

import numpy as np

from models.kafka.consumer_cursor import FETCH_BYTES
from models.kafka.steady_parts import Fallback, Sums

if TYPE_CHECKING:
    from models.kafka.steady_state import CLoop, Conn, PartLog, Session


def answered(
    times: list[float], pos: int, arrival: float, wait: float, horizon: float, final: bool
) -> tuple[float, int] | None:
    """When a fetch for position `pos` reaching the leader at `arrival` is answered, and the
    position its answer reaches, over the sorted times `times` at which there is more to
    fetch (a follower: the leader's appends; a consumer: the high watermark's advances).

    As Kafka's fetch purgatory: answered on arrival when something is there, else at the
    next such time or after `wait` (replica.fetch.wait.max.ms, fetch.max.wait.ms) with
    nothing; the answer carries everything there by then. None when it cannot be told yet:
    what happens after `horizon` is not known (or, `final`, nothing more will come)."""
    n = len(times)
    if pos < n and times[pos] <= arrival:
        if arrival > horizon:
            return None
        return arrival, bisect_right(times, arrival, pos)
    if pos >= n and final:
        return None
    deadline = arrival + wait
    if pos < n:
        t = times[pos]
        if t <= deadline:
            return t, bisect_right(times, t, pos)
        return deadline, pos
    if deadline <= horizon:
        return deadline, pos
    return None


class FetchLoops:
    """Follower and consumer fetch loops (mixed into `Planner`)."""

    # provided by Planner
    cpu: float
    net_ms: float
    req_ms: float
    replica_wait: float
    replica_response_max: float
    consumer_wait: float
    consumer_max: float
    proc: float
    polls: int
    done_at: float
    replicas: list[list[int]]
    parts: list[PartLog]
    conns: list[Conn]
    bytes_out: Sums
    handled: list[Sums]
    net_iv: list[list[tuple[np.ndarray, np.ndarray]]]
    io_iv: list[list[tuple[np.ndarray, np.ndarray]]]

    # --- followers: fetch loops -------------------------------------------------------------------
    def _run_session(self, s: Session, H: float, final: bool) -> None:
        A, CB = s.A, s.CB
        nA = len(A)
        g, c, last = s.g, s.c, s.last
        wait = self.replica_wait
        cpu, net_ms, req_ms = self.cpu, self.net_ms, self.req_ms
        fields = size = s.fields_bytes
        out, back = s.out, s.back
        # iterations: one per append at most, plus one per fetch that expires
        reach = min(H, A[-1]) if nA else g
        need = nA - c + 4 + (int((reach - g) / wait) if reach > g else 0)
        out_pop = out.ensure(need).pop
        back_pop = back.ensure(need).pop
        out_base, out_mpb = out.base, out.ms_per_byte
        back_base, back_fixed = back.base, size * back.ms_per_byte
        c0, g0 = c, g
        G: list[float] = []
        M: list[int] = []
        while True:
            answer = answered(A, c, g, wait, H, final)
            if answer is None:
                break
            r, m = answer
            nb = fields + CB[m] - CB[c]
            g2 = r + nb * cpu + (out_base * out_pop() + nb * out_mpb)
            g2 += back_base * back_pop() + back_fixed
            if g2 < last:
                g2 = last
            last = g2
            G.append(g2)
            M.append(m)
            c, g = m, g2
        s.g, s.c, s.last = g, c, last
        if not G:
            return
        lb = s.leader
        Ga = np.array(G)
        Ma = np.array(M, dtype=np.int64)
        # each answer's time and size, from the loop's fetches: a fetch that found records was
        # answered on arrival or at the first append after it; one that found none expired
        Gp = np.concatenate(([g0], Ga[:-1]))
        Mp = np.concatenate(([c0], Ma[:-1]))
        top = int(Ma[-1]) + 1
        An = np.array(A[c0:top] or [0.0])
        CBn = np.array(CB[c0:top])
        data = Ma > Mp
        first = An[np.minimum(Mp - c0, An.shape[0] - 1)]
        Ra = np.where(data, np.maximum(Gp, first), Gp + wait)
        NBa = fields + CBn[Ma - c0] - CBn[Mp - c0]
        if float(NBa.max()) - fields > self.replica_response_max:
            raise Fallback("a follower fetch would exceed replica.fetch.response.max.bytes")
        s.G.extend(Ga)
        s.M.extend(Ma)
        self.bytes_out.add(Ra, NBa)
        self.net_iv[lb].append((Ra, Ra + NBa * cpu))
        self.net_iv[lb].append((Ga, Ga + net_ms))
        self.io_iv[lb].append((Ga + net_ms, Ga + net_ms + req_ms))
        self.handled[lb].add(Ga, np.ones(Ga.shape[0]))

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
            answer = answered(commit, off, g, wait, H, final)
            if answer is None:
                break
            t, k = answer
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
