"""How far the event loop may commit at once: the earliest request the clients' reactions
to replies can cause (a closed-loop client's next request, a retry, a cache-aside fill, a list
or stream worker's next pop) and the next client deadline that will make a client react.

Mixed into `ClientReplies` (replies.py), which holds the clients' state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from models.redis.commands import CACHE_GET, LPUSH, XADD
from models.redis.requests import Rows

if TYPE_CHECKING:
    from models.redis.requests import RequestQueue

SMALL_ROWS = 8  # below this many rows, Python floats beat numpy calls
WORKER_BASE = 100_000  # connection ids of BRPOP workers and subscribers start here


class FeedbackBounds:
    """The bounds the server's loop must respect (state set up by `Clients.__init__`)."""

    model: Any
    kind: str
    closed: bool
    reacts: bool
    feedback: bool
    retries: int
    backoff_ms: float
    think_ms: float

    def feedback_bound(self, rows: Rows, m: int, end_row: np.ndarray) -> float:
        """Earliest arrival of a request that the replies of the first `m` rows can cause."""
        if not self.feedback:
            return np.inf
        if m <= SMALL_ROWS:
            return self._feedback_bound_small(rows, m, end_row)
        reply_at = end_row + rows["reply_delay"][:m]
        conn = rows["conn"][:m]
        op = rows["op"][:m]
        # a client that already gave up on a request has reacted to it (at its deadline)
        own = (conn >= 0) & (conn < WORKER_BASE) & ~rows["gave_up"][:m]
        bound = np.inf
        if self.closed and own.any():
            deadline = rows["deadline"][:m]
            bound = min(bound, float(np.minimum(reply_at, deadline)[own].min()) + self.think_ms)
        if self.retries:
            deadline = rows["deadline"][:m]
            late = own & (reply_at > deadline)
            if late.any():
                bound = min(bound, float(deadline[late].min()) + self.backoff_ms)
            if self.model.server.serving != "serving":
                bound = min(bound, float(reply_at[own].min(initial=np.inf)) + self.backoff_ms)
        if self.kind == "cache":
            gets = op == CACHE_GET
            if gets.any():
                gets &= self._may_miss(rows, m, gets, end_row)
                if gets.any():
                    bound = min(bound, float(reply_at[gets].min()))
        if self.kind in ("list", "stream"):
            listy = (op == LPUSH) | (op == XADD) | (conn >= WORKER_BASE)
            if listy.any():
                bound = min(bound, float(end_row[listy].min()) + self.model.consumer_cycle_ms)
        return bound

    def _feedback_bound_small(self, rows: Rows, m: int, end_row: np.ndarray) -> float:
        """`feedback_bound` of a few rows with Python floats (closed loops commit a few at a
        time, where numpy calls would cost more than the arithmetic)."""
        ends = end_row.tolist()
        delays = rows["reply_delay"][:m].tolist()
        conns = rows["conn"][:m].tolist()
        gave_up = rows["gave_up"][:m].tolist()
        deadlines = rows["deadline"][:m].tolist()
        ops = rows["op"][:m].tolist()
        listy_kind = self.kind in ("list", "stream")
        not_serving = self.retries and self.model.server.serving != "serving"
        cycle = self.model.consumer_cycle_ms if listy_kind else np.inf
        cache = self.kind == "cache"
        if cache:  # (as `_may_miss`)
            store = self.model.server.store
            value, expire_at = store.live.value, store.live.expire_at
            keys = rows["key"][:m].tolist()
            evicts = store.memory.limited
        wrote = False  # a write ran before (under maxmemory it may evict a GET's key)
        bound = np.inf
        for i in range(m):
            end = ends[i]
            conn = conns[i]
            if 0 <= conn < WORKER_BASE and not gave_up[i]:
                reply_at = end + delays[i]
                deadline = deadlines[i]
                if self.closed:
                    bound = min(bound, min(reply_at, deadline) + self.think_ms)
                if self.retries:
                    if reply_at > deadline:
                        bound = min(bound, deadline + self.backoff_ms)
                    if not_serving:
                        bound = min(bound, reply_at + self.backoff_ms)
            if listy_kind and (ops[i] == LPUSH or ops[i] == XADD or conn >= WORKER_BASE):
                bound = min(bound, end + cycle)
            if cache:
                if ops[i] != CACHE_GET:
                    wrote = True
                elif (evicts and wrote) or not (value[keys[i]] >= 0 and expire_at[keys[i]] > end):
                    bound = min(bound, end + delays[i])  # a miss: the client SETs at once
        return bound

    def _may_miss(self, rows: Rows, m: int, gets: np.ndarray, end_row: np.ndarray) -> np.ndarray:
        """GETs that may miss (and make the client SET): all but those sure to hit.

        A GET hits if its key is present now, does not expire before the GET runs, and nothing
        before it in these iterations can remove the key (only writes evict, under maxmemory).
        """
        live = self.model.server.store.live
        keys = rows["key"][:m]
        present = (live.value[keys] >= 0) & (live.expire_at[keys] > end_row)
        if self.model.server.store.memory.limited:
            writes = np.cumsum(rows["op"][:m] != CACHE_GET) > 0
            present &= ~writes
        return gets & ~present

    def next_deadline(self, queue: RequestQueue) -> float:
        """When the next queued request times out on a client that will react to it."""
        if not self.reacts or not len(queue):
            return np.inf
        conn = queue.field("conn")
        if len(queue) <= SMALL_ROWS:  # (a few closed-loop requests queued: no masks)
            gave_up, deadline = queue.field("gave_up").tolist(), queue.field("deadline").tolist()
            return min(
                (
                    d
                    for c, g, d in zip(conn.tolist(), gave_up, deadline, strict=True)
                    if not g and 0 <= c < WORKER_BASE
                ),
                default=np.inf,
            )
        watch = ~queue.field("gave_up") & (conn >= 0) & (conn < WORKER_BASE)
        if not watch.any():
            return np.inf
        return float(queue.field("deadline")[watch].min())
