"""RDB snapshots and the AOF: when data reaches the disk, and what a crash or power loss costs.

AOF (aof.c `flushAppendOnlyFile`, "Persistence" docs). `beforeSleep` writes the iteration's
writes to the AOF file (page cache) before the replies go out. appendfsync always then fsyncs
in the main thread (one fsync covers the whole iteration: group commit); everysec hands an
fsync to a background thread once a second; while that fsync still runs, the next write() is
*postponed* (replies still go out: acknowledged writes sit in Redis's own aof_buf) for up to
2 s, after which the write blocks the main thread until the fsync finishes ("Asynchronous AOF
fsync is taking too long"). no never fsyncs: the kernel writes back after
vm.dirty_expire_centisecs. `auto-aof-rewrite-*` forks a child that writes a new base.

RDB (rdb.c, "Persistence" docs). serverCron checks the `save` rules; BGSAVE forks (the main
thread stalls for fork_ms_per_gb per GB of used memory), the child serializes the dataset *as
of the fork*, writes a temp file, fsyncs and renames it over dump.rdb: only a completed
snapshot replaces the previous one. Memory pages written by the parent meanwhile are copied
(copy-on-write).

A restart loads the AOF if appendonly is on, else the RDB. Whatever the journal held beyond the
recovered position is lost, with the cause of the mechanism that dropped it.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from models.redis import dataset as ds
from models.redis.config import GB

if TYPE_CHECKING:
    from models.redis.loop import Plan
    from models.redis.server import RedisServer

AOF_INCR = "appendonly.aof.1.incr.aof"
AOF_BASE = "appendonly.aof.1.base.rdb"
RDB_FILE = "dump.rdb"
POSTPONE_LIMIT_MS = 2000.0  # aof.c: "we can't wait over two seconds"
EVERYSEC_MS = 1000.0
BGSAVE_RETRY_DELAY_MS = 5000.0  # CONFIG_BGSAVE_RETRY_DELAY after a failed BGSAVE
PAGE_BYTES = 4096


class Persistence:
    """AOF and RDB state of the server, and recovery from its disk."""

    def __init__(self, server: RedisServer):
        self.server = server
        self.env = server.env
        self.ctx = server.ctx
        config = server.config
        self.config = config
        self.aof_on = config.appendonly
        self.policy = config.appendfsync
        self.aof = server.disk.file(AOF_INCR)  # positions = journal positions
        self.aof_base_pos = 0
        self.aof_base_bytes = 0.0
        self.aof_incr_bytes = 0.0
        self.buffer_bytes = 0.0
        self.fsync_in_progress = False
        self.fsync_event: simpy.Event | None = None
        self.last_fsync_ms = self.env.now
        self.synced_pos = 0
        self._fsync_target = 0
        self.postponed_start: float | None = None
        self.delayed_fsyncs = 0  # INFO aof_delayed_fsync
        self.rules = config.save_rules
        self.last_save_ms = self.env.now
        self.last_bgsave_ok = True
        self.last_bgsave_try_ms = -np.inf
        self.child: str | None = None  # "rdb" or "aof" while a forked child runs
        self.child_fork_pos = 0
        self.dirty_at_fork = 0
        self.incr_bytes_at_fork = 0.0
        self.crash_exec_pos = 0
        self.crash_written_pos = 0

    # --- positions ------------------------------------------------------------------------------
    @property
    def written_pos(self) -> int:
        return int(self.aof.written)

    @property
    def exec_pos(self) -> int:
        return self.server.store.journal.end

    def unsynced(self) -> bool:
        return self.exec_pos > self.synced_pos

    # --- per iteration --------------------------------------------------------------------------
    def first_needing_process(self, plan: Plan) -> int:
        """Index of the first planned iteration whose beforeSleep the server must do itself.

        (an fsync in the main thread, starting the background fsync, or a blocking write).
        """
        n = len(plan)
        if not self.aof_on or n == 0 or self.policy == "no":
            return n
        skip_fsync = self.config.no_appendfsync_on_rewrite and self.child is not None
        if self.policy == "always":
            if skip_fsync:
                return n
            return int(np.argmax(plan.has_write)) if plan.has_write.any() else n
        if not self.fsync_in_progress:
            if skip_fsync:
                return n
            due = plan.exec_end >= self.last_fsync_ms + EVERYSEC_MS
            if not self.unsynced():
                due &= np.cumsum(plan.has_write) > 0
            return int(np.argmax(due)) if due.any() else n
        start = self.postponed_start
        if start is None:
            pending = self.exec_pos > self.written_pos
            if not pending and not plan.has_write.any():
                return n
            first = 0 if pending else int(np.argmax(plan.has_write))
            start = float(plan.exec_end[first])
        late = plan.exec_end >= start + POSTPONE_LIMIT_MS
        return int(np.argmax(late)) if late.any() else n

    def action_due(self) -> float:
        """When an iteration may next need the server itself (fsync start, blocking write)."""
        if not self.aof_on or self.policy != "everysec":
            return np.inf
        if self.fsync_in_progress:
            if self.postponed_start is None:
                return np.inf
            return self.postponed_start + POSTPONE_LIMIT_MS
        if self.config.no_appendfsync_on_rewrite and self.child is not None:
            return np.inf
        return self.last_fsync_ms + EVERYSEC_MS

    def after_batches(self, plan: Plan, aof_bytes: float) -> None:
        """beforeSleep of committed iterations that need no special action: write or postpone."""
        if not self.aof_on:
            return
        self.buffer_bytes += aof_bytes
        if self.policy == "everysec" and self.fsync_in_progress:
            if self.postponed_start is None and self.exec_pos > self.written_pos:
                first = int(np.argmax(plan.has_write)) if plan.has_write.any() else 0
                self.postponed_start = float(plan.exec_end[first])
            return
        self._write()

    def _write(self) -> None:
        amount = self.exec_pos - self.written_pos
        if amount > 0:
            self.aof.append(amount, self.buffer_bytes)
            self.aof_incr_bytes += self.buffer_bytes
        self.buffer_bytes = 0.0
        self.postponed_start = None

    def batch_action(self) -> Generator[Any, Any, None]:
        """The beforeSleep of an iteration that needs the server: called at its exec end."""
        if self.policy == "always":
            self._write()
            event = self.aof.fsync()
            yield event
            self.synced_pos = self.written_pos
            return
        if self.fsync_in_progress:
            # postponed for 2 s: the write() blocks until the background fsync is done
            self.delayed_fsyncs += 1
            self.ctx.event(
                "aof_write_blocked",
                "redis",
                postponed_ms=self.env.now - (self.postponed_start or 0),
            )
            if self.fsync_event is not None and not self.fsync_event.triggered:
                yield self.fsync_event
            self._fsync_finished()
        self._write()
        if self.env.now - self.last_fsync_ms >= EVERYSEC_MS and self.unsynced():
            self._start_fsync()

    def _start_fsync(self) -> None:
        """aof_background_fsync: a bio thread fsyncs what was written so far."""
        self.fsync_in_progress = True
        self.last_fsync_ms = self.env.now
        self._fsync_target = self.written_pos
        event = self.aof.fsync()
        self.fsync_event = event
        incarnation = self.server.incarnation
        event.callbacks.append(lambda _ev: self._on_fsync_done(incarnation))

    def _on_fsync_done(self, incarnation: int) -> None:
        server = self.server
        if incarnation != server.incarnation or not self.fsync_in_progress:
            return
        server.settle()  # iterations before now saw the fsync still running
        self._fsync_finished()
        server.poke()

    def _fsync_finished(self) -> None:
        if self.fsync_in_progress:
            self.fsync_in_progress = False
            self.synced_pos = max(self.synced_pos, self._fsync_target)

    # --- serverCron -----------------------------------------------------------------------------
    def cron(self) -> Generator[Any, Any, float]:
        """AOF flush checks and save/rewrite rules at a cron tick; returns the fork stall (ms)."""
        now = self.env.now
        if self.aof_on and self.policy == "everysec":
            if self.fsync_in_progress and self.postponed_start is not None:
                if now - self.postponed_start >= POSTPONE_LIMIT_MS:
                    yield from self.batch_action()
            elif not self.fsync_in_progress:
                self._write()
                skip = self.config.no_appendfsync_on_rewrite and self.child is not None
                if now - self.last_fsync_ms >= EVERYSEC_MS and self.unsynced() and not skip:
                    self._start_fsync()
        elif self.aof_on and not self.fsync_in_progress:
            self._write()
        if self.child is not None:
            self._cow_gauge()
            return 0.0
        if self._save_due(now):
            return self.fork("rdb")
        if self._rewrite_due():
            return self.fork("aof")
        return 0.0

    def _save_due(self, now: float) -> bool:
        store = self.server.store
        if not self.rules or store.dirty == 0:
            return False
        if not self.last_bgsave_ok and now - self.last_bgsave_try_ms < BGSAVE_RETRY_DELAY_MS:
            return False
        return any(
            store.dirty >= changes and now - self.last_save_ms >= seconds * 1000.0
            for seconds, changes in self.rules
        )

    def _rewrite_due(self) -> bool:
        config = self.config
        if not self.aof_on or config.auto_aof_rewrite_percentage == 0:
            return False
        current = self.aof_base_bytes + self.aof_incr_bytes
        if current < config.aof_rewrite_min_bytes:
            return False
        base = max(self.aof_base_bytes, 1.0)
        return (current * 100.0 / base) - 100.0 >= config.auto_aof_rewrite_percentage

    def fork(self, kind: str) -> float:
        """BGSAVE or BGREWRITEAOF: fork (main-thread stall) and start the child."""
        server = self.server
        store = server.store
        used = store.memory.used
        stall = self.config.fork_ms_per_gb * used / GB
        image = store.image()
        nbytes = max(store.memory.dataset_bytes, 0.0)
        self.child = kind
        self.child_fork_pos = image.position
        self.incr_bytes_at_fork = self.aof_incr_bytes
        self.dirty_at_fork = store.dirty
        self.last_bgsave_try_ms = self.env.now
        self.ctx.event(
            "fork",
            "redis",
            child="bgsave" if kind == "rdb" else "aof_rewrite",
            stall_ms=stall,
            used_memory=used,
        )
        server.spawn(self._child(kind, image, nbytes, server.incarnation))
        return stall

    def _child(
        self, kind: str, image: ds.Image, nbytes: float, incarnation: int
    ) -> Generator[Any, Any, None]:
        # the child serializes the dataset (CPU), then writes a temp file, fsyncs and renames it
        yield self.env.timeout(nbytes / (self.config.rdb_save_mb_s * 1000.0))
        fname = RDB_FILE if kind == "rdb" else AOF_BASE
        yield self.server.disk.write_atomic(fname, image, nbytes)
        server = self.server
        if incarnation != server.incarnation:
            return
        server.settle()
        self.child = None
        if kind == "rdb":
            self.last_save_ms = self.env.now
            self.last_bgsave_ok = True
            server.store.misconf = False
            server.store.dirty -= self.dirty_at_fork
            self.ctx.event("rdb_saved", "redis", position=image.position, bytes=nbytes)
        else:
            self.aof_base_pos = image.position
            self.aof_base_bytes = nbytes
            # Redis 7 opened a new incr file at the fork: only what came after counts as growth
            self.aof_incr_bytes = max(0.0, self.aof_incr_bytes - self.incr_bytes_at_fork)
            self.ctx.event("aof_rewritten", "redis", position=image.position, bytes=nbytes)
        self._fold()
        self.ctx.gauge("rdb_cow_bytes", 0.0)

    def _cow_gauge(self) -> None:
        store = self.server.store
        writes = store.journal.end - self.child_fork_pos
        touched = min(writes, store.n_keys + store.memory.background_keys)
        self.ctx.gauge("rdb_cow_bytes", min(store.memory.used, touched * PAGE_BYTES))

    def _fold(self) -> None:
        """Let the journal forget what no recovery can lose any more."""
        floor = self.recoverable_floor()
        if floor is not None:
            self.server.store.fold(floor)

    def recoverable_floor(self) -> int | None:
        """A position every possible recovery reaches (None: a crash can lose everything)."""
        if self.aof_on:
            return max(self.aof_base_pos, int(self.aof.durable))
        content = self.server.disk.file(RDB_FILE).content
        return content.position if isinstance(content, ds.Image) and self.rules else None

    def after_fsync_fold(self) -> None:
        if self.aof_on and self.exec_pos - self.server.store.journal.base > 250_000:
            self._fold()

    # --- faults and restart -----------------------------------------------------------------------
    def on_crash(self) -> None:
        """The process died: remember what it had executed and written; its child dies too."""
        self.crash_exec_pos = self.exec_pos
        self.crash_written_pos = self.written_pos
        self.child = None
        self.fsync_in_progress = False
        self.fsync_event = None
        self.postponed_start = None
        self.buffer_bytes = 0.0

    def shutdown(self) -> None:
        """SHUTDOWN: write and fsync the AOF, SAVE the RDB if save points are set."""
        if self.aof_on:
            self._write()
            self.aof.fsync()
        if self.rules:
            store = self.server.store
            self.server.disk.write_atomic(RDB_FILE, store.image(), store.memory.dataset_bytes)

    def recover(self) -> tuple[ds.Image, float, list[tuple[int, int, str]]]:
        """(image to load, load time ms, lost journal ranges with their cause)."""
        store = self.server.store
        crash_end, written = self.crash_exec_pos, self.crash_written_pos
        lost: list[tuple[int, int, str]] = []
        if self.aof_on:
            position = max(self.aof_base_pos, min(int(self.aof.written), crash_end))
            lost.append((max(position, written), crash_end, "aof_write_postponed"))
            lost.append((position, min(written, crash_end), "not_fsynced_at_power_loss"))
            image = store.state_at(position)
            replay_ms = (position - self.aof_base_pos) * self.config.aof_load_us_per_command / 1000
        elif self.rules:
            content = self.server.disk.file(RDB_FILE).content
            image = content.copy() if isinstance(content, ds.Image) else self._empty(0)
            position = image.position
            lost.append((position, crash_end, "after_last_snapshot"))
            replay_ms = 0.0
        else:
            image = self._empty(store.journal.base)
            position = image.position
            lost.append((position, crash_end, "no_persistence"))
            replay_ms = 0.0
        return image, replay_ms, [(a, b, cause) for a, b, cause in lost if b > a]

    def _empty(self, position: int, background_keys: int = 0) -> ds.Image:
        store = self.server.store
        return ds.empty_image(store.n_keys, background_keys, position)

    def initial_files(self) -> None:
        """The initial dataset was loaded from a dump.rdb (and is the AOF's base, if any)."""
        store = self.server.store
        image = store.image()
        disk = self.server.disk
        if self.rules or not self.aof_on:
            disk.replace(RDB_FILE, image)
        if self.aof_on:
            disk.replace(AOF_BASE, image)
            self.aof_base_bytes = store.memory.dataset_bytes

    def load_ms(self, dataset_bytes: float, replay_ms: float) -> float:
        """Time to load the recovered files: read them, parse them, replay the AOF tail."""
        rdb_bytes = max(0.0, dataset_bytes)
        read_ms = self.server.disk.read_time_ms(rdb_bytes)
        return read_ms + self.config.load_ms_per_gb * rdb_bytes / GB + replay_ms

    def restarted(self, position: int) -> None:
        """Continue writing the AOF at the recovered position (a fresh incarnation)."""
        if self.aof_on and self.aof.written > position:
            self.server.disk.truncate(AOF_INCR, position)
        self.synced_pos = min(self.synced_pos, position)
        self.last_fsync_ms = self.env.now
        self.last_save_ms = self.env.now
        self.server.store.dirty = 0
