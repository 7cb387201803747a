"""Pub/sub: PUBLISH delivers to the subscribers connected at that moment and stores nothing.

Each published message becomes one message id per subscriber (its copy), so the fate of every
copy is known: processed by its subscriber (delivered), or lost because the subscriber was not
subscribed when it was published (`pubsub_not_connected`: disconnected, crashed, reconnecting),
because the subscriber was cut off for a full output buffer (`pubsub_output_buffer_limit`:
`client-output-buffer-limit pubsub 32mb 8mb 60`, the buffer of a slow or unreachable reader),
because it crashed with messages received but unprocessed (`received_not_processed`), or
because the connection ended (either side died) with the messages still in Redis's output
buffer (`dropped_by_server`).

A subscriber processes its messages one at a time (`processing_ms` x slowdown). What it has not
read yet sits first in the kernel socket buffers (`socket_buffer_bytes`, not counted by Redis),
then in Redis's output buffer for that client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from models.redis.consumer_process import ConsumerProcess
from models.redis.events import record_event
from simulator import history as hist
from simulator.node import Node

if TYPE_CHECKING:
    from models.redis.model import RedisModel

MESSAGE_FRAME_BYTES = 40  # "*3\r\n$7\r\nmessage\r\n$<channel>..." around the payload
RECEIVED_NOT_PROCESSED = hist.register_cause(hist.LOST, "received_not_processed")


class SubscriberNode(ConsumerProcess):
    """A subscriber process: a crash loses what it received and had not processed."""

    def __init__(self, pubsub: PubSub, index: int):
        super().__init__(pubsub, index)
        self.pubsub = pubsub

    def on_restart(self) -> None:
        self.pubsub.subscribe(self.index, self.env.now)

    def on_pause(self) -> None:
        self.pubsub.paused(self.index)

    def on_resume(self) -> None:
        self.pubsub.resumed(self.index)


class _Pending:
    """Copies sent to a subscriber and not processed yet, oldest first (growable arrays).

    `cum` holds the cumulative bytes sent to this subscriber up to and including each copy, so
    the bytes consumed by any moment is one lookup (done times are in order).
    """

    def __init__(self) -> None:
        self._ids = np.zeros(64, dtype=np.int64)
        self._done = np.zeros(64)
        self._nbytes = np.zeros(64)
        self._cum = np.zeros(64)
        self.head = self.tail = 0
        self.cum_before = 0.0  # cumulative bytes of everything before the first pending copy

    @property
    def ids(self) -> np.ndarray:
        return self._ids[self.head : self.tail]

    @property
    def done(self) -> np.ndarray:
        return self._done[self.head : self.tail]

    @property
    def nbytes(self) -> np.ndarray:
        return self._nbytes[self.head : self.tail]

    @property
    def cum(self) -> np.ndarray:
        return self._cum[self.head : self.tail]

    @property
    def size(self) -> int:
        return self.tail - self.head

    @property
    def cum_last(self) -> float:
        return float(self._cum[self.tail - 1]) if self.tail > self.head else self.cum_before

    def append(self, ids: np.ndarray, done: np.ndarray, nbytes: np.ndarray) -> None:
        n = ids.size
        if self.tail + n > self._ids.size:
            live = self.size
            cap = max(64, 2 * (live + n))
            for name in ("_ids", "_done", "_nbytes", "_cum"):
                old = getattr(self, name)
                new = np.zeros(cap, dtype=old.dtype)
                new[:live] = old[self.head : self.tail]
                setattr(self, name, new)
            self.head, self.tail = 0, live
        sl = slice(self.tail, self.tail + n)
        base = self.cum_last
        self._ids[sl], self._done[sl], self._nbytes[sl] = ids, done, nbytes
        self._cum[sl] = base + np.cumsum(nbytes)
        self.tail += n

    def drop_first(self, k: int) -> None:
        if k:
            self.cum_before = float(self._cum[self.head + k - 1])
            self.head += k

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the masked copies (a disconnect drops the rest)."""
        ids, done, nbytes = self.ids[mask].copy(), self.done[mask].copy(), self.nbytes[mask].copy()
        before = self.cum_before
        self.head = self.tail = 0
        self.cum_before = before
        self.append(ids, done, nbytes)

    def consumed_bytes(self, t: np.ndarray) -> np.ndarray:
        """Cumulative bytes processed by each time in `t`."""
        if not self.size:
            return np.full(t.size, self.cum_before)
        k = np.searchsorted(self.done, t, side="right")
        return np.where(k > 0, self.cum[np.maximum(k - 1, 0)], self.cum_before)


class _Sub:
    """One subscriber's connection state and the copies it has not processed yet."""

    def __init__(self) -> None:
        self.connected_from = np.inf  # subscribed from this time on (inf: not subscribed)
        self.pending = _Pending()  # done = processing end of each copy (inf: held by a cut)
        self.busy_until = -np.inf
        self.soft_since: float | None = None
        self.rejoin_at_drain = False  # killed: resubscribes once it has read what reached it
        self.rejoin_at_resume = False  # its connection was reset while it was paused


class PubSub:
    """The channel, its subscribers, and the server side of their output buffers."""

    def __init__(self, model: RedisModel, count: int):
        self.model = model
        self.ctx = model.ctx
        self.env = model.env
        self.history = model.ctx.history
        assert model.ctx.network is not None
        self.net = model.ctx.network
        self.processing_ms = model.ctx.spec.workload.processing_ms
        self.hard, self.soft, soft_s = model.config.pubsub_limits
        self.soft_ms = soft_s * 1000.0
        self.socket_bytes = model.config.socket_buffer_bytes
        self.nodes = [SubscriberNode(self, i) for i in range(count)]
        self.subs = [_Sub() for _ in range(count)]

    @property
    def count(self) -> int:
        return len(self.subs)

    def start(self) -> None:
        for i in range(self.count):
            self.subscribe(i, self.env.now)

    def subscribe(self, index: int, at: float) -> None:
        """SUBSCRIBE sent at `at`: active once the server has run it (one way later)."""
        if self.model.server.serving == "down":
            return  # subscribes again when the server comes back
        node = self.nodes[index]
        self.subs[index].rejoin_at_drain = False
        self.subs[index].rejoin_at_resume = False
        self.subs[index].connected_from = at + self.net.delay(node.name, "redis", 30)

    # --- PUBLISH ----------------------------------------------------------------------------------
    def publish(self, first_ids: np.ndarray, sent_ms: np.ndarray, nbytes: np.ndarray) -> None:
        """Copies of published messages leave for the subscribers (in publish order)."""
        if not self.subs:
            # PUBLISH returns 0 receivers: the message reached nobody
            self.history.lose(first_ids, "pubsub_not_connected", float(sent_ms[0]))
            return
        frontier = min(self.env.now, float(sent_ms[0]))
        self.flush(frontier)
        size = nbytes.astype(np.float64) + MESSAGE_FRAME_BYTES
        for index in range(self.count):
            self._deliver_to(index, first_ids + index, sent_ms, size)

    def _deliver_to(self, index: int, ids: np.ndarray, sent: np.ndarray, size: np.ndarray) -> None:
        sub = self.subs[index]
        node = self.nodes[index]
        start = 0
        n = ids.size
        while start < n:
            if sent[start] < sub.connected_from:
                stop = n
                if np.isfinite(sub.connected_from):
                    stop = int(np.searchsorted(sent, sub.connected_from, side="left"))
                self.history.lose(ids[start:stop], "pubsub_not_connected", float(sent[start]))
                start = stop
                continue
            seg = slice(start, n)
            done = self._processing(index, node, sent[seg], size[seg])
            cut = self._limit_violation(sub, sent[seg], size[seg], done)
            if cut is None:
                self._append(sub, ids[seg], done, size[seg])
                return
            keep = slice(start, start + cut + 1)
            self._append(sub, ids[keep], done[: cut + 1], size[keep])
            self._disconnect(index, float(sent[start + cut]))
            start += cut + 1

    def _processing(self, index: int, node: Node, sent: np.ndarray, size: np.ndarray) -> np.ndarray:
        """When each copy is processed: one way to the subscriber, then one at a time (not
        while it is held by a cut, or the subscriber is paused: inf)."""
        if node.is_paused or not self.net.reachable("redis", node.name):
            return np.full(sent.size, np.inf)
        arrival = sent + self.net.delays("redis", node.name, sent.size, size)
        service = self.processing_ms * node.slowdown
        sub = self.subs[index]
        k = np.arange(sent.size)
        # Lindley recursion with a constant service time: done_k = s (k+1) + max(prev, max a_j - s j)
        done = service * (k + 1) + np.maximum(
            sub.busy_until, np.maximum.accumulate(np.maximum(arrival, sub.busy_until) - service * k)
        )
        return done

    def _limit_violation(
        self, sub: _Sub, sent: np.ndarray, size: np.ndarray, done: np.ndarray
    ) -> int | None:
        """Index of the first copy after which Redis closes the client (output buffer limits)."""
        if self.hard <= 0 and self.soft <= 0:
            return None
        pending = sub.pending
        published = pending.cum_last + np.cumsum(size)
        consumed = pending.consumed_bytes(sent)
        k_new = np.searchsorted(done, sent, side="right")
        caught_up = k_new > 0  # then every older copy is processed too (done times in order)
        consumed = np.where(
            caught_up, pending.cum_last + np.cumsum(size)[np.maximum(k_new - 1, 0)], consumed
        )
        buffered = published - consumed - self.socket_bytes
        over_hard = (buffered > self.hard) if self.hard > 0 else np.zeros(sent.size, dtype=bool)
        violation = over_hard
        if self.soft > 0:
            above = buffered > self.soft
            run_start = np.where(
                above & ~np.r_[sub.soft_since is not None, above[:-1]], sent, -np.inf
            )
            if sub.soft_since is not None:
                run_start[0] = sub.soft_since if above[0] else run_start[0]
            run_start = np.maximum.accumulate(run_start)
            violation = violation | (above & (sent - run_start >= self.soft_ms))
            if above[-1]:
                sub.soft_since = float(run_start[-1])
            else:
                sub.soft_since = None
        if not violation.any():
            return None
        sub.soft_since = None
        return int(np.argmax(violation))

    def _append(self, sub: _Sub, ids: np.ndarray, done: np.ndarray, size: np.ndarray) -> None:
        sub.pending.append(ids, done, size)
        if done.size and np.isfinite(done[-1]):
            sub.busy_until = float(done[-1])

    def _disconnect(self, index: int, at: float) -> None:
        """Output buffer over the limit: Redis closes the client; its buffer is lost."""
        sub = self.subs[index]
        pending = sub.pending
        lost = self._beyond_socket(pending, at, self._stopped_reader(index))
        if lost.any():
            self.history.lose(pending.ids[lost], "pubsub_output_buffer_limit", at)
            pending.keep(~lost)
        finite = pending.done[np.isfinite(pending.done)]
        last = float(finite.max()) if finite.size else at
        record_event(
            self.ctx,
            at,
            "client_killed",
            self.nodes[index].name,
            reason="output_buffer_limit",
            lost=int(lost.sum()),
        )
        client = self.model.config.client
        sub.connected_from = np.inf
        sub.busy_until = max(sub.busy_until, last) if pending.size else at
        if client.reconnect and self.nodes[index].is_paused:
            # it sees the EOF once it runs again and has read what reached it
            sub.rejoin_at_drain = True
        elif client.reconnect:
            # the client reads what reached it, sees EOF, reconnects and resubscribes
            sub.rejoin_at_drain = True
            self._rejoin(index, max(at, last))

    def _rejoin(self, index: int, drained_at: float) -> None:
        sub = self.subs[index]
        again = drained_at + self.model.config.client.reconnect_delay_ms
        sub.connected_from = again + self.net.delay(self.nodes[index].name, "redis", 30)

    # --- deliveries --------------------------------------------------------------------------------
    def flush(self, now: float) -> None:
        """Copies processed by `now` are delivered."""
        for sub in self.subs:
            pending = sub.pending
            if not pending.size or pending.done[0] > now:
                continue
            k = int(np.searchsorted(pending.done, now, side="right"))
            self.history.deliver(pending.ids[:k], pending.done[:k], dup_cause="pubsub_redelivery")
            pending.drop_first(k)

    def before_down(self, index: int) -> None:
        """A subscriber dies: copies it received and had not processed are lost."""
        self.model.server.settle()
        now = self.env.now
        self.flush(now)
        sub = self.subs[index]
        pending = sub.pending
        if pending.size:
            # what reached its socket dies with it; Redis drops the rest with the connection
            beyond = self._beyond_socket(pending, now, self._stopped_reader(index))
            self.history.lose(pending.ids[~beyond], "received_not_processed", now)
            self.history.lose(pending.ids[beyond], "dropped_by_server", now)
            pending.drop_first(pending.size)
        sub.connected_from = np.inf
        sub.busy_until = now
        sub.soft_since = None
        sub.rejoin_at_drain = sub.rejoin_at_resume = False

    def paused(self, index: int) -> None:
        """SIGSTOP: the subscriber stops reading; what it has not processed waits (in its socket,
        then in Redis's output buffer, which may now pass its limits) until it runs again."""
        sub = self.subs[index]
        done = sub.pending.done  # a view: held in place
        done[done > self.env.now] = np.inf

    def resumed(self, index: int) -> None:
        """The subscriber runs again: it processes what waited, from now on."""
        now = self.env.now
        sub = self.subs[index]
        node = self.nodes[index]
        if sub.rejoin_at_resume:
            # its connection was reset while it was stopped (the server restarted): it resubscribes
            sub.rejoin_at_resume = False
            self.subscribe(index, now + self.model.config.client.reconnect_delay_ms)
        pending = sub.pending
        if not self.net.reachable("redis", node.name):
            return  # held by a cut as well: re-timed when it heals
        held = ~np.isfinite(pending.done)
        if held.any():
            service = self.processing_ms * node.slowdown
            done = pending.done
            start = max(now, sub.busy_until if np.isfinite(sub.busy_until) else now)
            done[held] = start + service * np.arange(1, int(held.sum()) + 1)
            sub.busy_until = float(done[held][-1])
        if sub.rejoin_at_drain and sub.connected_from > now:
            self._rejoin(index, max(now, sub.busy_until))

    def server_down(self, now: float) -> None:
        """The server died: every subscription ends; unsent output buffers are gone."""
        self.flush(now)
        for index, sub in enumerate(self.subs):
            beyond = self._beyond_socket(sub.pending, now, self._stopped_reader(index))
            if beyond.any():
                self.history.lose(sub.pending.ids[beyond], "dropped_by_server", now)
                sub.pending.keep(~beyond)
            sub.connected_from = np.inf
            sub.soft_since = None

    def server_back(self, now: float) -> None:
        """The server process is up again (SUBSCRIBE is allowed while LOADING): resubscribe."""
        delay = self.model.config.client.reconnect_delay_ms
        for index, node in enumerate(self.nodes):
            if node.is_paused and self.model.config.client.reconnect:
                self.subs[index].rejoin_at_resume = True  # it sees the reset once it runs
            elif node.is_up and self.model.config.client.reconnect:
                self.subs[index].connected_from = (
                    now + delay + self.net.delay(node.name, "redis", 30)
                )

    def network_changed(self) -> None:
        """After a heal or a change of slowdown: re-time the copies not processed yet."""
        self.retime(self.env.now)

    def retime(self, now: float) -> None:
        """Copies held by a cut arrive a fresh delay after the heal; the unprocessed ones go at
        the subscriber's current speed."""
        for index, sub in enumerate(self.subs):
            node = self.nodes[index]
            pending = sub.pending
            if not pending.size or node.is_paused or not self.net.reachable("redis", node.name):
                continue
            done = pending.done  # a view: re-timed in place
            later = done > now
            if not later.any():
                continue
            held = ~np.isfinite(done)
            arrival = np.where(held, np.inf, now)
            if held.any():
                arrival[held] = now + self.net.delays(
                    "redis", node.name, int(held.sum()), pending.nbytes[held]
                )
            service = self.processing_ms * node.slowdown
            busy = max(now, float(done[~later].max()) if (~later).any() else now)
            times = []
            for a in arrival[later].tolist():
                busy = max(busy, a) + service
                times.append(busy)
            done[later] = times
            sub.busy_until = busy
            if sub.rejoin_at_drain and sub.connected_from > now:
                self._rejoin(index, busy)

    def backlog(self) -> int:
        return sum(s.pending.size for s in self.subs)

    def _stopped_reader(self, index: int) -> bool:
        """Its unprocessed copies wait because the subscriber is paused, not behind a cut: they
        flowed into its socket buffers as far as those go."""
        node = self.nodes[index]
        return node.is_paused and self.net.reachable("redis", node.name)

    def _beyond_socket(self, pending: _Pending, at: float, stopped: bool = False) -> np.ndarray:
        """Unread copies that are still in Redis's output buffer, not in the socket buffers
        (a copy held by a cut never left Redis; one held by a paused reader did, up to them)."""
        done = pending.done
        unread = (done > at) | ~np.isfinite(done)
        in_kernel = np.cumsum(np.where(unread, pending.nbytes, 0.0)) <= self.socket_bytes
        return unread & ~(in_kernel & (np.isfinite(done) | stopped))
