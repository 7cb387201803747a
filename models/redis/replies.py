"""What clients make of replies: acknowledgements, errors, timeouts, retries, cache-aside.

A reply that reaches the client before its deadline acknowledges the command (or fails it, for
an error reply); no reply by the deadline makes it indeterminate. With retries, a timed-out
request, or one refused or answered -LOADING, is sent again after the backoff. A cache miss
makes the client SET the value. A cut link holds requests and replies until the heal (TCP).

These reactions feed new requests back into the event loop, so they also bound how far the
server may commit its loop at once (`feedback_bound`, `next_deadline`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from models.redis.commands import CACHE_GET, CACHE_SET
from models.redis.feedback import SMALL_ROWS, WORKER_BASE, FeedbackBounds
from models.redis.requests import Rows, take_rows
from models.redis.store import ERR_LOADING, ERR_REFUSED, ERR_RESET, ERR_WAIT_SHORT, MISS, OK
from simulator import history as hist

if TYPE_CHECKING:
    import simpy

    from models.redis.requests import RequestQueue
    from simulator.scenario import Fault

ADMIN_CONN = 200_000  # the admin connection that sends slow commands
REQUEST_OVERHEAD_BYTES = 40  # RESP framing + key of a request
REPLY_BYTES = 10  # "+OK\r\n", ":1\r\n", "$-1\r\n"


NETWORK_FAULTS = ("partition", "heal", "delay", "packet_loss")


def refresh_around_network_fault(
    env: simpy.Environment, fault: Fault, settle: Callable[[], None], refresh: Callable[[], None]
) -> None:
    """A network fault changes which requests and replies can pass (held by a cut, released by
    a heal): `refresh` runs right after the core applies the fault, and when it ends the loop is
    first committed up to that moment (`settle`, before the core's own end-of-fault timer,
    created after this one, heals) and `refresh` runs right after."""
    if fault.kind not in NETWORK_FAULTS:
        return
    env.timeout(0).callbacks.append(lambda _ev: refresh())
    if fault.duration_s is None or fault.kind == "heal":
        return

    def ended(_ev: Any) -> None:
        settle()
        env.timeout(0).callbacks.append(lambda _e: refresh())

    env.timeout(fault.duration_s * 1000.0).callbacks.append(ended)


class ClientReplies(FeedbackBounds):
    """Reply handling of `Clients` (state set up by `Clients.__init__`; what the feedback
    bounds read too is declared in `FeedbackBounds`)."""

    ctx: Any
    env: Any
    history: Any
    net: Any
    node: Any
    spec: Any
    producing: bool
    gets: int
    hits: int
    held_requests: list[tuple[str, Rows]]
    held_replies: list[tuple[Rows, np.ndarray, np.ndarray]]

    def build(self, *args: Any, **kwargs: Any) -> Rows:
        raise NotImplementedError

    def submit(self, rows: Rows, src: str = "clients") -> None:
        raise NotImplementedError

    def rebuild(self, rows: Rows, send: np.ndarray, attempt: np.ndarray) -> Rows:
        """The same commands sent again at `send` (a retry, a redirect): consecutive rows of one
        connection sent at the same moment form one request, as a pipeline does."""
        conn = rows["conn"]
        first = np.r_[True, (conn[1:] != conn[:-1]) | (send[1:] != send[:-1])]
        return self.build(
            rows["op"], rows["msg"], rows["key"], rows["nbytes"], send, conn, first, attempt
        )

    def _expand(self, first_ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _next_requests(self, conns: np.ndarray, at: np.ndarray) -> None:
        raise NotImplementedError

    # --- replies ---------------------------------------------------------------------------------------
    def on_replies(
        self,
        rows: Rows,
        reply_at: np.ndarray,
        end_row: np.ndarray,
        status: np.ndarray,
        aux: np.ndarray,
    ) -> None:
        """Replies (or their absence) for executed, rejected or reset requests."""
        conn = rows["conn"]
        if conn.size == 1:  # (one reply: no masks)
            only = int(conn[0])
            if WORKER_BASE <= only < ADMIN_CONN:
                self.model.on_worker_replies(rows, reply_at, end_row, status, aux)
                return
            if not 0 <= only < WORKER_BASE:
                return
        elif not (own := (conn >= 0) & (conn < WORKER_BASE)).all():
            workers = (conn >= WORKER_BASE) & (conn < ADMIN_CONN)
            if workers.all():  # (a consumer's reply alone: nothing to select)
                self.model.on_worker_replies(rows, reply_at, end_row, status, aux)
                return
            if workers.any():
                self.model.on_worker_replies(
                    take_rows(rows, workers),
                    reply_at[workers],
                    end_row[workers],
                    status[workers],
                    aux[workers],
                )
            if not own.any():
                return
            rows = take_rows(rows, own)
            reply_at, status, aux = reply_at[own], status[own], aux[own]
        if not self.node.is_up:
            reply_at = np.full(reply_at.size, np.inf)  # nobody there to read the reply
        elif not self.net.reachable(self.model.server.name, "clients"):
            finite = np.isfinite(reply_at)
            if finite.any():
                self.held_replies.append((take_rows(rows, finite), status[finite], aux[finite]))
                rows, reply_at, status, aux = (
                    take_rows(rows, ~finite),
                    reply_at[~finite],
                    status[~finite],
                    aux[~finite],
                )
        if rows["arrival"].size:
            self._settle_replies(rows, reply_at, status, aux)

    def _settle_replies(
        self, rows: Rows, reply_at: np.ndarray, status: np.ndarray, aux: np.ndarray
    ) -> None:
        history = self.history
        now = self.env.now
        msg, attempt = rows["msg"], rows["attempt"]
        deadline, gave_up = rows["deadline"], rows["gave_up"]
        if self._all_answered(reply_at, deadline, gave_up, status):
            # nothing to fail, doubt or retry: acknowledge, fill the cache, send the next ones
            has_msg = msg >= 0
            if has_msg.all():
                self._ack(msg, reply_at)
            elif has_msg.any():
                self._ack(msg[has_msg], reply_at[has_msg])
            if self.kind == "cache":
                self._cache_replies(rows, reply_at, None, status, aux)
            if self.closed:
                last = rows["last"]
                if last.any():
                    self._next_requests(rows["conn"][last], reply_at[last] + self.think_ms)
            return
        answered = (reply_at <= deadline) & ~gave_up & np.isfinite(reply_at)
        timed_out = ~answered & ~gave_up
        has_msg = msg >= 0
        ok = answered & ((status == OK) | (status == MISS))
        soft_error = answered & (
            (status == ERR_LOADING) | (status == ERR_REFUSED) | (status == ERR_RESET)
        )
        can_retry = (
            (soft_error | (timed_out & np.isfinite(deadline))) & (attempt < self.retries) & has_msg
        )
        if (sel := ok & has_msg).any():
            self._ack(msg[sel], reply_at[sel])
        # a reset connection, or WAIT that returned fewer replicas than asked: it may have run
        short = (status == ERR_RESET) | (status == ERR_WAIT_SHORT)
        unsure = has_msg & (timed_out | (answered & short))
        if unsure.any():
            history.indeterminate(self._expand(msg[unsure]), now)
        failed = has_msg & answered & ~ok & ~can_retry & ~short
        if failed.any():
            ids = self._expand(msg[failed])
            # a failure of a retry does not undo the doubt an earlier timed-out attempt left
            ids = ids[history.status[ids] == hist.PENDING]
            history.fail(ids, now)
        if can_retry.any():
            again = np.where(timed_out, deadline, reply_at)[can_retry] + self.backoff_ms
            self._resend(take_rows(rows, can_retry), np.maximum(again, now))
        if self.kind == "cache":
            self._cache_replies(rows, reply_at, ok, status, aux)
        if self.closed:
            done = rows["last"] & ~gave_up & np.isfinite(np.where(answered, reply_at, deadline))
            retried_conns = set(rows["conn"][can_retry].tolist())
            if done.any():
                conns = rows["conn"][done]
                at = np.where(answered, reply_at, deadline)[done] + self.think_ms
                keep = np.array([c not in retried_conns for c in conns.tolist()], dtype=bool)
                self._next_requests(conns[keep], at[keep])

    @staticmethod
    def _all_answered(
        reply_at: np.ndarray, deadline: np.ndarray, gave_up: np.ndarray, status: np.ndarray
    ) -> bool:
        """Every reply is an OK or a nil, in time for a client still waiting (fast path)."""
        if status.size <= SMALL_ROWS:
            return (
                not any(gave_up.tolist())
                and all(s in (OK, MISS) for s in status.tolist())
                and all(
                    r <= d and r < np.inf
                    for r, d in zip(reply_at.tolist(), deadline.tolist(), strict=True)
                )
            )
        return (
            not ((status != OK) & (status != MISS)).any()
            and not gave_up.any()
            and bool((reply_at <= deadline).all())
            and bool(np.isfinite(reply_at).all())
        )

    def _ack(self, msg: np.ndarray, reply_at: np.ndarray) -> None:
        copies = self.model.copies
        ids = self._expand(msg)
        self.history.ack(ids, np.repeat(reply_at, copies) if copies > 1 else reply_at)

    def _resend(self, rows: Rows, send: np.ndarray) -> None:
        self.submit(self.rebuild(rows, send, rows["attempt"] + 1))

    def _cache_replies(
        self,
        rows: Rows,
        reply_at: np.ndarray,
        ok: np.ndarray | None,
        status: np.ndarray,
        aux: np.ndarray,
    ) -> None:
        """Hits deliver the value's fill; misses make the client SET it (`ok` None: all OK)."""
        gets: list[int] | np.ndarray  # row positions
        hits: list[int] | np.ndarray
        misses: list[int] | np.ndarray
        if status.size <= SMALL_ROWS:  # (a few replies: Python lists beat numpy masks)
            ops, codes, found = rows["op"].tolist(), status.tolist(), aux.tolist()
            oks = [True] * len(ops) if ok is None else ok.tolist()
            gets = [i for i, op in enumerate(ops) if op == CACHE_GET and oks[i]]
            hits = [i for i in gets if codes[i] == OK and found[i] >= 0]
            misses = [i for i in gets if codes[i] == MISS]
        else:
            is_get = rows["op"] == CACHE_GET
            get = is_get if ok is None else ok & is_get
            gets = np.flatnonzero(get)
            hits = np.flatnonzero(get & (status == OK) & (aux >= 0))
            misses = np.flatnonzero(get & (status == MISS))
        if not len(gets):
            return
        self.gets += len(gets)
        self.hits += len(hits)
        if len(hits):
            self._deliver_fills(aux[hits], reply_at[hits])
        if len(misses) and self.producing:
            self._fill(reply_at[misses], rows["key"][misses], rows["conn"][misses])

    def _deliver_fills(self, ids: np.ndarray, reply_at: np.ndarray) -> None:
        """The application used the cached values: the fills that put them there are delivered."""
        deliveries = self.history.deliveries
        if ids.size == 1:
            if deliveries[ids[0]] == 0:
                self.history.deliver(ids, reply_at)
            return
        fresh = deliveries[ids] == 0
        if fresh.any():
            uniq, pos = np.unique(ids[fresh], return_index=True)
            self.history.deliver(uniq, reply_at[fresh][pos])

    def _fill(self, at: np.ndarray, keys: np.ndarray, conns: np.ndarray) -> None:
        """Cache-aside: on a miss the application loads the value and SETs it with a TTL."""
        n = at.size
        if n > 1:
            order = np.argsort(at, kind="stable")
            at, keys, conns = at[order], keys[order], conns[order]
        first = self.history.produce(at, keys)
        msg = first + np.arange(n)
        op = np.full(n, CACHE_SET, dtype=np.int8)
        sizes = np.full(n, self.spec.value_bytes)
        self.submit(self.build(op, msg, keys, sizes, at, conns, np.ones(n, dtype=bool)))

    def expire(self, queue: RequestQueue, now: float) -> None:
        """Clients whose queued requests passed their deadline give up on them (and react)."""
        conn = queue.field("conn")
        gave_up = queue.field("gave_up")
        due = ~gave_up & (conn >= 0) & (conn < WORKER_BASE) & (queue.field("deadline") <= now)
        if not due.any():
            return
        rows = {k: v[due].copy() for k, v in queue.view().items()}
        gave_up[due] = True  # the request stays queued: it still runs when the server gets to it
        n = rows["arrival"].size
        self._settle_replies(
            rows, np.full(n, np.inf), np.full(n, OK, dtype=np.int8), np.full(n, -1)
        )

    # --- network cuts --------------------------------------------------------------------------------
    def network_changed(self) -> None:
        """After a cut or a heal: hold what cannot pass, release what can."""
        now = self.env.now
        server = self.model.server
        queue = server.queue
        if len(queue):
            conn = queue.field("conn")
            source = self._sources(conn)
            for src in np.unique(source[queue.field("arrival") > now]).tolist():
                if self.net.reachable(src, self.model.server.name):
                    continue
                in_flight = (queue.field("arrival") > now) & (
                    self._sources(queue.field("conn")) == src
                )
                self.held_requests.append((src, queue.remove(in_flight)))
        still: list[tuple[str, Rows]] = []
        for src, rows in self.held_requests:
            if not self.net.reachable(src, self.model.server.name):
                still.append((src, rows))
                continue
            # TCP retransmits: the requests arrive a fresh delay after the heal (or after their
            # own send time, for requests the client wrote later)
            # one delay per pipelined packet, as when it was built: rows of one packet drawn
            # apart could be reordered and split, and a command would run with an earlier
            # packet, before it was sent
            starts = rows["first"].copy()
            starts[:1] = True
            packet = np.cumsum(starts) - 1
            packet_bytes = np.bincount(packet, weights=rows["nbytes"] + REQUEST_OVERHEAD_BYTES)
            delay = self.net.delays(src, self.model.server.name, packet_bytes.size, packet_bytes)
            rows["arrival"] = np.maximum(rows["send"], now) + delay[packet]
            rows = take_rows(rows, np.argsort(rows["arrival"], kind="stable"))
            self._timed_out_while_held(rows, now)
            server.submit(rows)
        self.held_requests = still
        if self.held_replies and self.net.reachable(self.model.server.name, "clients"):
            held_replies, self.held_replies = self.held_replies, []
            for rows, status, aux in held_replies:
                n = rows["arrival"].size
                reply_at = now + self.net.delays(self.model.server.name, "clients", n, REPLY_BYTES)
                self._settle_replies(rows, reply_at, status, aux)

    @staticmethod
    def _sources(conn: np.ndarray) -> np.ndarray:
        """The node each connection belongs to."""
        worker = (conn >= WORKER_BASE) & (conn < ADMIN_CONN)
        names = np.array(["clients"], dtype=object).repeat(conn.size)
        if worker.any():
            names[worker] = np.char.add("consumer", (conn[worker] - WORKER_BASE).astype(str))
        return names.astype(str)

    def _timed_out_while_held(self, rows: Rows, now: float) -> None:
        """Requests whose client timed out during the cut: indeterminate, maybe retried."""
        late = (rows["deadline"] < now) & ~rows["gave_up"]
        if late.any():
            sub = take_rows(rows, late)
            n = sub["arrival"].size
            self._settle_replies(
                sub, np.full(n, np.inf), np.full(n, OK, dtype=np.int8), np.full(n, -1)
            )
            rows["gave_up"] |= late

    # --- gauges --------------------------------------------------------------------------------------
    def take_hit_ratio(self) -> float | None:
        if self.gets == 0:
            return None
        ratio = self.hits / self.gets
        self.gets = self.hits = 0
        return ratio

    def held(self) -> int:
        return sum(r["arrival"].size for _src, r in self.held_requests) + sum(
            r["arrival"].size for r, _s, _a in self.held_replies
        )
