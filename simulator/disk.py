"""A storage device behind the Linux page cache: what a write costs, and what power loss drops.

A write lands in the page cache and costs the writer nothing; it becomes durable when an
`fsync` completes or when the kernel's flusher writes the dirty pages back after
`vm.dirty_expire_centisecs` (checked every `vm.dirty_writeback_centisecs`). A process crash
loses nothing written (the page cache belongs to the kernel, so there is nothing to call); a
power loss drops everything that was not durable yet.

Defaults (`[disk]` section): fsync median 1 ms, sigma 0.5 (a datacenter SATA/NVMe SSD with a
volatile write cache; NVMe with power-loss protection is 0.05-0.2 ms, network block storage such
as EBS 1-10 ms, spinning disks 10+ ms); sequential write 500 MB/s and read 1000 MB/s (SATA SSD
order of magnitude, MB = 10^6 bytes); `vm.dirty_expire_centisecs` 3000 and
`vm.dirty_writeback_centisecs` 500 (Linux defaults, Documentation/admin-guide/sysctl/vm.rst).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import simpy

if TYPE_CHECKING:
    from simulator.context import RunContext
    from simulator.scenario import Disk as DiskSpec


class _Flush:
    """A write on its way to the device; `target` is the position durable when it completes."""

    __slots__ = ("target",)

    def __init__(self, target: float):
        self.target = target


class DiskFile:
    """An append-only logical stream (a log, an AOF) or a snapshot-like file (`content`).

    Positions are in the model's own unit (records, offsets, bytes): `written` is what readers
    of the page cache see, `durable` what survives a power loss.
    """

    __slots__ = ("_extents", "_pending", "content", "disk", "durable", "name", "written")

    def __init__(self, disk: Disk, name: str):
        self.disk = disk
        self.name = name
        self.written: float = 0
        self.durable: float = 0
        self.content: Any = None
        # Dirty extents [start, end, nbytes, writeback tick], oldest first. Appends that the
        # flusher will write back on the same tick share one extent, so memory stays small.
        self._extents: deque[list[Any]] = deque()
        self._pending: list[_Flush] = []

    def append(self, amount: float, nbytes: float) -> None:
        """Write `amount` positions (`nbytes` bytes) into the page cache: free for the writer."""
        disk = self.disk
        start = self.written
        self.written = start + amount
        tick = disk._writeback_tick(disk.env.now)
        extents = self._extents
        if extents and extents[-1][3] == tick:
            last = extents[-1]
            last[1] = self.written
            last[2] += nbytes
        else:
            extents.append([start, self.written, nbytes, tick])
        disk._dirty_bytes += nbytes

    def fsync(self) -> simpy.Event:
        """Make everything written so far durable; the event's value is the durable position.

        Like fsync(2), the data written before the call is durable when the call returns; the
        device serves one flush at a time. Power loss before completion: the event never fires
        (the process that waited on it died with the machine).
        """
        disk = self.disk
        nbytes = self._take_dirty(len(self._extents))
        service_ms = (
            disk.fsync_latency_sample() + nbytes * disk._write_ms_per_byte * disk.slow_factor
        )
        done = disk.env.event()
        disk._submit(self, self.written, nbytes, service_ms, done)
        return done

    def _take_dirty(self, count: int) -> float:
        """Hand the `count` oldest dirty extents to the device; returns their bytes."""
        nbytes = 0.0
        for _ in range(count):
            nbytes += self._extents.popleft()[2]
        return nbytes

    def _cut_at(self, position: float) -> None:
        """Forget what lies beyond `position` (log truncation)."""
        extents = self._extents
        while extents and extents[-1][0] >= position:
            self.disk._dirty_bytes -= extents.pop()[2]
        if extents and extents[-1][1] > position:
            start, end, nbytes, _ = extents[-1]
            kept = nbytes * (position - start) / (end - start)
            self.disk._dirty_bytes -= nbytes - kept
            extents[-1][1:3] = [position, kept]
        for flush in self._pending:
            flush.target = min(flush.target, position)
        self.written = min(self.written, position)
        self.durable = min(self.durable, position)

    def _discard(self) -> None:
        """Forget every dirty page and in-flight write (the file is replaced or deleted)."""
        while self._extents:
            self.disk._dirty_bytes -= self._extents.pop()[2]
        for flush in self._pending:
            flush.target = -math.inf


class Disk:
    """One device and its page cache: serialized flushes, background writeback, power loss."""

    def __init__(self, ctx: RunContext, name: str, spec: DiskSpec):
        if name in ctx.disks:
            raise ValueError(f"duplicate disk name {name!r}")
        ctx.disks[name] = self
        self.ctx = ctx
        self.env = ctx.env
        self.name = name
        self.spec = spec
        self.files: dict[str, DiskFile] = {}
        self.slow_factor = 1.0
        self._rng = ctx.rng(f"disk.{name}")
        self._log_fsync_median = math.log(spec.fsync_ms)
        self._write_ms_per_byte = 1.0 / (spec.write_mb_s * 1000.0)  # MB/s = 1000 bytes/ms
        self._read_ms_per_byte = 1.0 / (spec.read_mb_s * 1000.0)
        self._busy_until_ms = -math.inf  # the device serves one write or flush at a time
        self._epoch = 0  # bumped by power loss: writes submitted before it never complete
        self._dirty_bytes = 0.0
        self._expire_ms = spec.dirty_expire_centisecs * 10.0
        self._writeback_period_ms = spec.dirty_writeback_centisecs * 10.0
        self._started_ms = self.env.now
        self.env.process(self._flusher())

    def file(self, fname: str) -> DiskFile:
        """The file named `fname` (created empty on first use)."""
        f = self.files.get(fname)
        if f is None:
            f = self.files[fname] = DiskFile(self, fname)
        return f

    def dirty_bytes(self) -> float:
        """Bytes written but not durable yet: what a power loss would drop now."""
        return self._dirty_bytes

    # --- timing -------------------------------------------------------------------------------
    def fsync_latency_sample(self) -> float:
        """One fsync's device latency (ms): lognormal around `fsync_ms`, times any slowdown."""
        sample = self._rng.lognormal(self._log_fsync_median, self.spec.fsync_sigma)
        return float(sample) * self.slow_factor

    def read_time_ms(self, nbytes: float) -> float:
        """Time to read `nbytes` sequentially from the device (restart, replica catch-up)."""
        return nbytes * self._read_ms_per_byte * self.slow_factor

    def _submit(
        self,
        f: DiskFile,
        target: float,
        nbytes: float,
        service_ms: float,
        done: simpy.Event | None,
    ) -> None:
        """Queue a write on the device; at completion `f` is durable up to `target`."""
        flush = _Flush(target)
        f._pending.append(flush)
        epoch = self._epoch

        def complete(_event: simpy.Event) -> None:
            if epoch != self._epoch:
                return  # the power went out first
            f._pending.remove(flush)
            self._dirty_bytes -= nbytes
            if flush.target > f.durable:
                f.durable = flush.target
            if done is not None:
                done.succeed(f.durable)

        self.env.timeout(self._occupy(service_ms)).callbacks.append(complete)

    def _occupy(self, service_ms: float) -> float:
        """Queue `service_ms` of work on the device; returns the wait until it is done."""
        now = self.env.now
        self._busy_until_ms = max(now, self._busy_until_ms) + service_ms
        return self._busy_until_ms - now

    # --- OS writeback -------------------------------------------------------------------------
    def _writeback_tick(self, t_ms: float) -> int:
        """The first flusher wake-up at which data written at `t_ms` has expired."""
        return math.ceil((t_ms + self._expire_ms - self._started_ms) / self._writeback_period_ms)

    def _flusher(self) -> Generator[simpy.Event, Any, None]:
        # The kernel flusher wakes every vm.dirty_writeback_centisecs and writes back pages dirty
        # for longer than vm.dirty_expire_centisecs, so unsynced data lives 30-35 s by default.
        # Writeback issues no cache flush of its own; the device is assumed to keep what it got.
        tick = 0
        while True:
            yield self.env.timeout(self._writeback_period_ms)
            tick += 1
            for f in self.files.values():
                extents = f._extents
                expired = 0
                for extent in extents:
                    if extent[3] > tick:
                        break
                    expired += 1
                if expired:
                    target = extents[expired - 1][1]
                    nbytes = f._take_dirty(expired)
                    service_ms = nbytes * self._write_ms_per_byte * self.slow_factor
                    self._submit(f, target, nbytes, service_ms, None)

    # --- whole files --------------------------------------------------------------------------
    def truncate(self, fname: str, position: float) -> None:
        """Cut a log back to `position` (e.g. a Kafka follower truncating to the leader epoch)."""
        self.file(fname)._cut_at(position)

    def replace(self, fname: str, content: Any, position: float = 0) -> None:
        """Atomically make `content` the file, durable at once (the rename after an fsync)."""
        f = self.file(fname)
        f._discard()
        f.content = content
        f.written = f.durable = position

    def write_atomic(
        self, fname: str, content: Any, nbytes: float, position: float = 0
    ) -> simpy.Event:
        """Write a temp file, fsync it, rename it over `fname` (RDB save, AOF rewrite).

        The old content stays visible and durable until the rename; a power loss before that
        keeps the old file and the event never fires. The event's value is `position`.
        """
        service_ms = nbytes * self._write_ms_per_byte * self.slow_factor
        service_ms += self.fsync_latency_sample()
        done = self.env.event()
        epoch = self._epoch

        def rename(_event: simpy.Event) -> None:
            if epoch == self._epoch:
                self.replace(fname, content, position)
                done.succeed(position)

        self.env.timeout(self._occupy(service_ms)).callbacks.append(rename)
        return done

    def delete(self, fname: str) -> None:
        """Remove a file (a deleted log segment); its dirty pages are dropped with it."""
        f = self.files.pop(fname, None)
        if f is not None:
            f._discard()

    # --- faults -------------------------------------------------------------------------------
    def power_loss(self) -> dict[str, tuple[float, float]]:
        """Drop everything not durable; returns fname -> (written before, written after).

        Flushes still on the device never complete and their events never fire.
        """
        self._epoch += 1
        self._busy_until_ms = self.env.now
        self._dirty_bytes = 0.0
        dropped: dict[str, tuple[float, float]] = {}
        for fname, f in self.files.items():
            dropped[fname] = (f.written, f.durable)
            f.written = f.durable
            f._extents.clear()
            f._pending.clear()
        return dropped

    def slow(self, factor: float) -> None:
        """slow_disk fault: fsyncs, writes and reads started from now take `factor` times longer."""
        self.slow_factor = factor
        self.ctx.event("slow_disk", node=self.name, factor=factor)

    def restore(self) -> None:
        """End a slow_disk fault (no-op when the disk is not slow)."""
        if self.slow_factor != 1.0:
            self.slow_factor = 1.0
            self.ctx.event("disk_restored", node=self.name)
