"""The Redis server: one event loop advanced in vectorized spans, its lifecycle and faults.

The loop is advanced *lazily*: `advance(t)` commits every iteration that completed by `t`
(replies, dataset changes, AOF writes), computing hundreds of iterations with numpy at a time
(`loop.plan`). The server's own SimPy process only wakes where something can change the
loop's course: a serverCron tick (save rules, fork stall, AOF flush checks, expiry), the
iteration that must start or wait for an fsync, the end of LOADING, a client timeout that makes
a client retry. Anything else that changes the server's state from outside (a fault, a
finished fsync or snapshot, a gauge sample) first calls `settle()`, which commits everything
up to that moment, so every iteration sees the state it would have seen in a step-by-step
simulation. Facts are recorded with their own timestamps (reply arrival for acks).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from models.redis import dataset as ds
from models.redis import loop
from models.redis.commands import (
    AOF_BYTES_PER_WRITE,
    IS_WRITE,
    KEY_NAME_BYTES,
    PUBLISH,
    SLOW,
)
from models.redis.persistence import Persistence
from models.redis.requests import RequestQueue, Rows, empty_rows
from models.redis.stats import STALL_CONN, LoopStats
from models.redis.store import ERR_REFUSED, ERR_RESET, NO_ANSWER, OK, Store
from simulator import history as hist
from simulator.disk import Disk
from simulator.node import LOADING, UP, Node

if TYPE_CHECKING:
    from models.redis.model import RedisModel

SERVING, LOADING_DATA, DOWN = "serving", "loading", "down"
_MIN_WINDOW_MS = 0.05
_IS_WRITE = IS_WRITE.tolist()
_EPS_MS = 1e-9  # float noise between the vectorized and the step-by-step loop timing


def _ended_before(plan: loop.Plan, limit: float, t: float) -> int:
    """How many of the planned iterations, from the first, polled before `limit` and ended by `t`."""
    n = len(plan)
    if n <= 8:  # (the usual closed-loop span: a loop beats four array calls)
        polls, ends = plan.poll.tolist(), plan.end_ms.tolist()
        k = 0
        while k < n and polls[k] < limit and ends[k] <= t:
            k += 1
        return k
    ok = (plan.poll < limit) & (plan.end_ms <= t)
    return n if ok.all() else int(np.argmin(ok))


class RedisServer(Node):
    """The `redis` node: event loop, dataset, persistence; crash, power loss, restart, pause."""

    def __init__(self, model: RedisModel, name: str = "redis", role: str = "server"):
        super().__init__(model.ctx, name, role=role)
        self.model = model
        self.config = model.config
        self.disk = Disk(model.ctx, name, model.ctx.spec.disk)
        self.disks.append(self.disk)
        self.costs = model.costs
        self.loop_costs = loop.LoopCosts(
            self.costs.iteration_ms,
            self.costs.aof_write_ms,
            self.config.io_threads,
            self.config.io_threads_do_reads,
        )
        self.queue = RequestQueue()
        self.store = Store(self)
        self.persistence = Persistence(self)
        self.stats = LoopStats()
        self.serving = DOWN
        self.free_ms = -np.inf  # the loop can poll again from here (end of the last iteration)
        self.cron_period_ms = 1000.0 / self.config.hz
        self.cron_due = np.inf
        self.loading_until = np.inf
        self.frozen = False
        self.down_reply = ERR_REFUSED
        self.crashed_at_ms = 0.0
        self._pause_start = 0.0
        self._inflight: Rows | None = None
        # client writes executed while WAIT was on: their replies may be held until WAIT returns
        # (ids of the producers' messages; those with an outcome are dropped as they are seen)
        self._wait_writes: list[np.ndarray] = []
        self._wait_writes_n = 0
        self._wait_compact_at = 1 << 16
        self._poke: Any = None
        self._wake_at: float | None = None
        self._window_ms = 50.0
        self._stats_from_ms = 0.0
        self.late_actions = 0

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start serving with the initial dataset in memory (at build time)."""
        self.serving = SERVING
        self.persistence.initial_files()
        self.free_ms = self.env.now
        self.cron_due = self.env.now + self.cron_period_ms
        self.spawn(self._main())

    def poke(self) -> None:
        """Something changed outside: the server process re-plans its next wake-up."""
        if self._poke is not None and not self._poke.triggered:
            self._poke.succeed()

    def submit(self, rows: Rows) -> None:
        """Requests sent by clients (arrival times in the future of the loop)."""
        self.queue.push(rows)
        wake = self._wake_at
        if wake is None or not rows["arrival"].size:
            return
        # the process only needs to re-plan if these requests may need it before its next wake
        always = self.persistence.aof_on and self.persistence.policy == "always"
        if (always and rows["arrival"][0] < wake) or (
            self.model.clients.reacts and float(rows["deadline"].min()) < wake
        ):
            self.poke()

    def settle(self) -> None:
        """Commit everything that happened up to now (before any outside state change)."""
        self.advance(self.env.now)

    # --- the server process --------------------------------------------------------------------------
    def _main(self) -> Generator[Any, Any, None]:
        env = self.env
        while True:
            self.advance(env.now)
            at, action = self._next_action()
            if at > env.now:
                self._poke = env.event()
                self._wake_at = at
                yield env.any_of([env.timeout(at - env.now), self._poke])
                self._poke = None
                self._wake_at = None
                continue
            if action is not None:
                yield from action()

    def _next_action(self) -> tuple[float, Any]:
        now = self.env.now
        clients = self.model.clients
        best: tuple[float, Any] = (clients.next_deadline(self.queue), self._client_timeouts)
        if self.frozen:
            return best
        boundary = self.cron_due
        if self.serving == LOADING_DATA:
            boundary = min(boundary, self.loading_until)
        nb = self._peek()
        if self.serving == SERVING:
            # an everysec fsync to start or a postponed write that turns blocking: wake then, or
            # at the end of the iteration that straddles that moment
            due = self.persistence.action_due()
            if due > now:
                best = min(best, (due, None), key=_first)
            elif nb is not None and self.persistence.first_needing_process(nb):
                best = min(best, (float(nb.end_ms[0]), None), key=_first)
        if nb is not None and nb.poll[0] < boundary:
            if self.serving == SERVING and self.persistence.first_needing_process(nb) == 0:
                return min(best, (max(float(nb.exec_end[0]), now), self._special_batch), key=_first)
            if boundary <= now:  # the timer waits for the iteration in progress to end
                return min(best, (float(nb.end_ms[0]), None), key=_first)
        if boundary <= now:
            return (now, self._timers)
        return min(best, (boundary, None), key=_first)

    def _peek(self) -> loop.Plan | None:
        if not len(self.queue):
            return None
        rows = self._planning_rows(self.queue.view())
        return loop.plan_one(rows, self.free_ms, self.loop_costs)

    def _planning_rows(self, rows: Rows) -> Rows:
        if self.serving == LOADING_DATA:
            # -LOADING: read, parse and an error reply instead of executing
            # (PUBLISH and SUBSCRIBE are allowed while loading: CMD_LOADING)
            rows = dict(rows)
            keep = (rows["conn"] == STALL_CONN) | (rows["op"] == PUBLISH)
            rows["cost"] = np.where(keep, rows["cost"], self.costs.error_ms)
            rows["op"] = np.where(rows["op"] == PUBLISH, PUBLISH, SLOW).astype(np.int8)
        return rows

    # --- advancing the loop --------------------------------------------------------------------------
    def advance(self, t: float) -> None:
        """Commit every iteration that ended by `t` and needs no action of the server process."""
        if self.serving == DOWN:
            self._reject(t)
            return
        if self.frozen:
            return
        clients = self.model.clients
        while True:
            horizon = min(t, self.free_ms + self._window_ms)
            n = self.queue.count_before(horizon)
            if n == 0:
                if horizon >= t:
                    return
                self._window_ms *= 2.0
                if self.queue.first_arrival() >= t:
                    return
                continue
            rows = self.queue.view(n)
            planning = self._planning_rows(rows)
            head, plan = loop.head_and_plan(planning, self.free_ms, self.loop_costs)
            if head.end_ms[0] > t + _EPS_MS or (
                self.serving == SERVING and self.persistence.first_needing_process(head) == 0
            ):
                return  # the next iteration has not ended yet, or the server process does it
            if plan is None:
                plan = loop.plan(planning, self.free_ms, self.loop_costs)
            limit = min(
                horizon, self.cron_due, self.loading_until, clients.next_deadline(self.queue)
            )
            k = _ended_before(plan, limit, t + _EPS_MS)
            if self.serving == SERVING:
                k = min(k, self.persistence.first_needing_process(plan))
            if k == 0:
                if horizon < t and plan.poll[0] >= horizon:
                    self._window_ms *= 2.0
                    continue
                return
            span = plan.head(k)
            bound = np.inf
            if clients.feedback:  # replies that make clients send more bound the span
                m = int(plan.end[k - 1])
                bound = clients.feedback_bound(rows, m, span.end_ms[span.row_batch()])
            limited = bound <= plan.poll[k - 1]
            if limited:
                k = max(1, int(np.searchsorted(plan.poll[:k], bound, side="left")))
                span = plan.head(k)
                self._window_ms = max(_MIN_WINDOW_MS, 2.0 * (bound - self.free_ms))
            elif k == len(plan) and horizon < t:
                self._window_ms *= 2.0
            self._commit(span)
            if not limited and k < len(plan):
                return

    def _commit(self, plan: loop.Plan) -> None:
        """Execute the planned iterations' commands and send their replies."""
        k = len(plan)
        m = int(plan.end[k - 1])
        rows = self.queue.pop(m)
        batch = plan.row_batch()
        exec_row = plan.exec_end[batch]
        end_row = plan.end_ms[batch]
        self._record_stats(rows, plan, end_row)
        loading = self.serving != SERVING
        pos0 = self.store.journal.end
        status, aux = self.store.execute(rows, exec_row, end_row, loading=loading)
        if not loading:
            self.persistence.after_batches(plan, self._aof_bytes(rows, status))
        self.free_ms = float(plan.end_ms[-1])
        self._replies(rows, end_row, status, aux, pos0)

    def _replies(
        self, rows: Rows, end_row: np.ndarray, status: np.ndarray, aux: np.ndarray, pos0: int
    ) -> None:
        """Propagate the writes to the replicas (beforeSleep), then reply (WAIT may delay it)."""
        reply_at = end_row + rows["reply_delay"]
        replication = self.model.replication
        if replication is not None:
            replication.executed(self, rows, end_row, status, pos0)
            if replication.wait_replicas:
                self._note_wait_writes(rows)
            replication.reply(self, rows, end_row, reply_at, status, aux)
            return
        self.model.clients.on_replies(rows, reply_at, end_row, status, aux)

    def _note_wait_writes(self, rows: Rows) -> None:
        msg = rows["msg"]
        writes = msg[IS_WRITE[rows["op"]] & (msg >= 0)]
        if not writes.size:
            return
        self._wait_writes.append(writes)
        self._wait_writes_n += writes.size
        if self._wait_writes_n > self._wait_compact_at:
            left = self.replies_held()
            self._wait_compact_at = max(1 << 16, 2 * left)

    def replies_held(self) -> int:
        """Client writes this server executed whose client has no answer yet: WAIT holds their
        replies until enough replicas acked (or its timeout, or this server's death)."""
        if not self._wait_writes:
            return 0
        ids = np.concatenate(self._wait_writes)
        ids = ids[self.ctx.history.status[ids] == hist.PENDING]
        self._wait_writes = [ids] if ids.size else []
        self._wait_writes_n = int(ids.size)
        return self._wait_writes_n

    @property
    def replying(self) -> bool:
        """An iteration's commands ran and its beforeSleep is under way (an fsync of
        `appendfsync always`): their replies have not left yet (a popped item is neither in the
        list nor with its worker)."""
        return self._inflight is not None

    def _aof_bytes(self, rows: Rows, status: np.ndarray) -> float:
        if status.size <= loop.SMALL_ROWS:  # (a few commands: integer sums without arrays)
            ops, codes, sizes = rows["op"].tolist(), status.tolist(), rows["nbytes"].tolist()
            return float(
                sum(
                    size + AOF_BYTES_PER_WRITE + KEY_NAME_BYTES
                    for op, code, size in zip(ops, codes, sizes, strict=True)
                    if code == OK and _IS_WRITE[op]
                )
            )
        writes = IS_WRITE[rows["op"]] & (status == OK)
        if writes.all():  # a run of successful writes: no selection to copy
            nbytes = rows["nbytes"]
            return float(nbytes.sum() + nbytes.size * (AOF_BYTES_PER_WRITE + KEY_NAME_BYTES))
        if not writes.any():
            return 0.0
        return float(
            rows["nbytes"][writes].sum() + writes.sum() * (AOF_BYTES_PER_WRITE + KEY_NAME_BYTES)
        )

    def _record_stats(self, rows: Rows, plan: loop.Plan, end_row: np.ndarray) -> None:
        if self.serving == SERVING and rows["arrival"][0] >= self._stats_from_ms:
            self.stats.record(self.ctx, rows, plan, end_row, self.loop_costs, self.config)

    def _special_batch(self) -> Generator[Any, Any, None]:
        """An iteration whose beforeSleep fsyncs (always), starts the background fsync, or blocks."""
        nb = self._peek()
        now = self.env.now
        if (
            nb is None
            or nb.exec_end[0] > now + _EPS_MS
            or self.persistence.first_needing_process(nb)
        ):
            return
        if now > nb.exec_end[0] + 1e-6:
            self.late_actions += 1  # a scheduling bug: the server missed the iteration's moment
        m = int(nb.end[0])
        rows = self.queue.pop(m)
        self._inflight = rows
        exec_row = np.full(m, nb.exec_end[0])
        end_planned = np.full(m, nb.end_ms[0])
        self._record_stats(rows, nb, end_planned)
        pos0 = self.store.journal.end
        status, aux = self.store.execute(rows, exec_row, end_planned)
        self.persistence.buffer_bytes += self._aof_bytes(rows, status)
        yield from self.persistence.batch_action()
        end = float(nb.end_ms[0]) + (self.env.now - float(nb.exec_end[0]))
        self._inflight = None
        self.free_ms = end
        end_row = np.full(m, end)
        self._replies(rows, end_row, status, aux, pos0)

    def _timers(self) -> Generator[Any, Any, None]:
        """Time events at a loop boundary: end of LOADING, serverCron."""
        now = self.env.now
        if self.serving == LOADING_DATA and self.loading_until <= now:
            self.serving = SERVING
            self.state = UP
            self.loading_until = np.inf
            self.ctx.event("loading_done", self.name, keys=int((self.store.live.value >= 0).sum()))
        if self.cron_due <= now:
            start = max(self.free_ms, now)
            stall = 0.0
            if self.serving == SERVING:
                stall = yield from self.persistence.cron()
                expired = (
                    self.store.active_expire(self.env.now) if self.store.mode == "cache" else 0
                )
                stall += expired * self.costs.expire_ms
                self.persistence.after_fsync_fold()
            self.free_ms = max(start, self.env.now) + self.costs.cron_ms + stall
            while self.cron_due <= now:
                self.cron_due += self.cron_period_ms

    def _client_timeouts(self) -> Generator[Any, Any, None]:
        """Clients whose requests waited past their deadline give up (and maybe retry)."""
        self.model.clients.expire(self.queue, self.env.now)
        yield from ()

    # --- a server that is down ---------------------------------------------------------------------
    def _reject(self, t: float) -> None:
        """Requests reaching a dead server: refused (process gone) or unanswered (host gone)."""
        while True:
            n = self.queue.count_before(t, inclusive=True)
            if n == 0:
                return
            rows = self.queue.pop(n)
            if self.down_reply == ERR_REFUSED:
                reply_at = rows["arrival"] + rows["reply_delay"]
            else:
                reply_at = np.full(n, np.inf)
            status = np.full(n, self.down_reply, dtype=np.int8)
            self.model.clients.on_replies(rows, reply_at, reply_at, status, np.full(n, -1))

    def _watch_while_down(self, incarnation: int) -> Generator[Any, Any, None]:
        while self.serving == DOWN and self.incarnation == incarnation:
            self._reject(self.env.now)
            yield self.env.timeout(20.0)

    def _going_down(self, reply: int) -> None:
        """Common to crash, power loss and stop, before the core changes the node's state."""
        self.settle()
        self.persistence.on_crash()
        now = self.env.now
        self.crashed_at_ms = now
        # requests already in the server's socket buffers, or in the iteration in progress: the
        # connection is reset, the client cannot know whether they ran
        arrived = self.queue.count_before(now, inclusive=True)
        rows = [self.queue.pop(arrived)] if arrived else []
        if self._inflight is not None:
            rows.append(self._inflight)
            self._inflight = None
        for part in rows:
            n = part["arrival"].size
            reset_at = np.full(n, now) + (part["reply_delay"] if reply == ERR_REFUSED else np.inf)
            status = np.full(n, ERR_RESET if reply == ERR_REFUSED else NO_ANSWER, dtype=np.int8)
            self.model.clients.on_replies(part, reset_at, reset_at, status, np.full(n, -1))
        self.serving = DOWN
        self.down_reply = reply
        self.frozen = False
        self.cron_due = self.loading_until = np.inf
        self.model.on_server_down(now, self)

    def crash(self) -> None:
        if not self.is_running:
            return
        self._going_down(ERR_REFUSED)
        super().crash()
        self.env.process(self._watch_while_down(self.incarnation))

    def power_loss(self) -> None:
        if self.is_running:
            self._going_down(NO_ANSWER)
        super().power_loss()
        self.env.process(self._watch_while_down(self.incarnation))

    def stop(self) -> None:
        if not self.is_running:
            return
        self.settle()
        self.persistence.shutdown()
        self._going_down(ERR_REFUSED)
        super().stop()
        self.env.process(self._watch_while_down(self.incarnation))

    def on_restart(self) -> None:
        """Load the AOF or the RDB; serve -LOADING for a time proportional to the data."""
        self._reject(self.env.now)
        replication = self.model.replication
        if replication is not None and replication.master is not self:
            # a replica (or a deposed master) resynchronizes from the master instead
            self.free_ms = self.env.now
            self.cron_due = self.env.now + self.cron_period_ms
            self.serving = SERVING
            self.spawn(self._main())
            replication.rejoin(self)
            return
        if replication is not None and replication.reads is not None:
            # reads the replicas served while the master was down saw its old journal
            for other in self.model.servers.values():
                if other is not self:
                    other.settle()
            replication.reads.evaluate()
            replication.reads.retire()
        image, replay_ms, lost = self.persistence.recover()
        history = self.ctx.history
        consumed = self.store.mode in ("list", "stream")
        for begin, end, cause in lost:
            value, kind, _retry = ds.decode(self.store.journal.entries(begin, end))
            ids = value[kind == ds.WRITE]
            ids = ids[~self.model.carried_away(ids)]
            if consumed and ids.size:
                # a list item or stream entry a consumer popped or read before the crash is
                # still with it, outside Redis: it processes it (not lost)
                ids = ids[~self.model.processing(ids)]
            if ids.size:
                history.lose(ids, cause, self.crashed_at_ms)
        self.store.load(image)
        self.persistence.restarted(image.position)
        load_ms = self.persistence.load_ms(self.store.memory.dataset_bytes, replay_ms)
        now = self.env.now
        self.ctx.event(
            "loading",
            self.name,
            load_ms=load_ms,
            position=image.position,
            lost_commands=sum(b - a for a, b, _ in lost),
        )
        self.free_ms = now
        self.cron_due = now + self.cron_period_ms
        self.serving = LOADING_DATA
        self.state = LOADING
        self.loading_until = now + load_ms
        self.spawn(self._main())
        self.model.on_server_restart(now)
        if replication is not None:
            replication.master_restarted(image.position)

    # --- pause (SIGSTOP, a long GC-like freeze) -----------------------------------------------------
    def pause(self, duration_ms: float | None) -> None:
        if not self.is_running or self.is_paused:
            return
        self.settle()
        self.frozen = True
        self._pause_start = self.env.now
        super().pause(duration_ms)

    def resume(self) -> None:
        if not self.is_paused:
            return
        super().resume()
        replication = self.model.replication
        if replication is not None and replication.reads is not None:
            replication.reads.resumed(self)
        if not self.frozen:
            return
        self.frozen = False
        now = self.env.now
        nb = self._peek()
        if nb is not None and nb.poll[0] < self._pause_start:
            # the iteration running when the process froze ends a pause later: a synthetic
            # command of that length joins it
            stall = empty_rows(1)
            at = float(nb.poll[0])
            stall["arrival"][:] = at
            stall["send"][:] = at
            stall["deadline"][:] = np.inf
            stall["cost"][:] = now - self._pause_start
            stall["op"][:] = SLOW
            stall["conn"][:] = STALL_CONN
            stall["msg"][:] = -1
            stall["first"][:] = True
            self.queue.push(stall)
        else:
            self.free_ms = max(self.free_ms, now)  # idle when it froze: polls again now
        self.poke()

    # --- observations ---------------------------------------------------------------------------------
    def backlog(self) -> int:
        """Requests that arrived and wait for the loop."""
        return self.queue.count_before(self.env.now, inclusive=True) if self.serving != DOWN else 0

    def loop_summary(self) -> dict[str, float]:
        summary = self.stats.summary(max(self.env.now - self._stats_from_ms, 1e-9))
        summary["late_actions"] = self.late_actions
        return summary


def _first(item: tuple[float, Any]) -> float:
    return item[0]
