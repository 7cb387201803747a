"""One replica's partition log: offsets, log end offset (LEO), high watermark (HW), leader epochs,
segments, retention, truncation, and the page cache it lives in.

The log maps its offsets onto positions of the partition's shared `RecordStore` through
*extents*: a run of consecutive offsets stored at consecutive store positions, written in one
leader epoch. A follower that copies its leader copies extents, so replication costs no per-record
work. A log is usually one extent per leader epoch.

Durability follows Kafka's design ("Don't fear the filesystem"): appends go to the OS page cache
through the core's `Disk` (one `DiskFile` per partition log, positions = offsets) and are not
fsynced unless `log.flush.interval.messages` says so. A process crash keeps the page cache; a
power loss keeps only what the OS wrote back (`vm.dirty_expire_centisecs`) or fsync made durable.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from models.kafka.store import RecordStore
    from simulator.disk import DiskFile

# Appends reach the DiskFile at most this late (a batch of appends is one page-cache write).
# The OS writeback tick is 5 s, so this shifts when data becomes durable by at most 0.2%.
DISK_PUSH_MS = 10.0

Piece = tuple[int, int, int, int]  # (first offset, store position, record count, leader epoch)


@dataclass(slots=True)
class Segment:
    """A log segment: Kafka deletes and rolls whole segments (segment.bytes, segment.ms)."""

    base_offset: int
    nbytes: float
    max_ts: float
    created_ms: float


class ReplicaLog:
    """The log of one partition on one broker."""

    def __init__(self, store: RecordStore, file: DiskFile, segment_bytes: int, segment_ms: float):
        self.store = store
        self.file = file
        self.segment_bytes = segment_bytes
        self.segment_ms = segment_ms
        self.ext_off: list[int] = []  # extents: first offset, store position, epoch
        self.ext_pos: list[int] = []
        self.ext_epoch: list[int] = []
        self.epochs: list[tuple[int, int]] = []  # leader epoch cache: (epoch, start offset)
        self.leo = 0
        self.hw = 0
        self.log_start = 0
        self.segments: list[Segment] = [Segment(0, 0.0, -np.inf, 0.0)]
        self.nbytes = 0.0
        self.hw_checkpoint = 0  # replication-offset-checkpoint: the HW a restart starts from
        self._pending_records = 0  # appended but not yet pushed to the DiskFile
        self._pending_bytes = 0.0
        self._pending_since = 0.0
        self.unflushed = 0  # records since the last fsync (log.flush.interval.messages)

    # --- appends ---------------------------------------------------------------------------------
    def append_batch(
        self, pos: int, count: int, nbytes: float, epoch: int, ts: float, now: float
    ) -> int:
        """A leader appends one batch stored at `pos`; returns its base offset."""
        base = self.leo
        if (
            self.ext_off
            and self.ext_epoch[-1] == epoch
            and self.ext_pos[-1] + (base - self.ext_off[-1]) == pos
        ):
            pass  # contiguous with the last extent: nothing to record
        else:
            self.ext_off.append(base)
            self.ext_pos.append(pos)
            self.ext_epoch.append(epoch)
            if not self.epochs or self.epochs[-1][0] < epoch:
                self.epochs.append((epoch, base))
        self.leo = base + count
        self._grow(count, nbytes, ts, now)
        return base

    def append_pieces(self, pieces: list[Piece], nbytes: float, ts: float, now: float) -> int:
        """A follower appends what its leader sent (starting at its LEO); returns records added."""
        added = 0
        for offset, pos, count, epoch in pieces:
            if offset != self.leo or count <= 0:
                continue
            if not (
                self.ext_off
                and self.ext_epoch[-1] == epoch
                and self.ext_pos[-1] + (offset - self.ext_off[-1]) == pos
            ):
                self.ext_off.append(offset)
                self.ext_pos.append(pos)
                self.ext_epoch.append(epoch)
                if not self.epochs or self.epochs[-1][0] < epoch:
                    self.epochs.append((epoch, offset))
            self.leo = offset + count
            added += count
        if added:
            self._grow(added, nbytes, ts, now)
        return added

    def _grow(self, count: int, nbytes: float, ts: float, now: float) -> None:
        seg = self.segments[-1]
        if seg.nbytes > 0 and (
            seg.nbytes + nbytes > self.segment_bytes or now - seg.created_ms >= self.segment_ms
        ):
            seg = Segment(self.leo - count, 0.0, -np.inf, now)
            self.segments.append(seg)
        seg.nbytes += nbytes
        if ts > seg.max_ts:
            seg.max_ts = ts
        self.nbytes += nbytes
        self.unflushed += count
        if not self._pending_records:
            self._pending_since = now
        self._pending_records += count
        self._pending_bytes += nbytes
        if now - self._pending_since >= DISK_PUSH_MS:
            self.push_to_disk()

    def push_to_disk(self) -> None:
        """Hand buffered appends to the page cache (a crash keeps them, a power loss may not)."""
        if self._pending_records:
            self.file.append(self._pending_records, self._pending_bytes)
            self._pending_records = 0
            self._pending_bytes = 0.0

    def flush(self) -> Any:
        """fsync the partition log (log.flush.interval.messages reached): an event."""
        self.push_to_disk()
        self.unflushed = 0
        return self.file.fsync()

    def start_epoch(self, epoch: int) -> None:
        """A new leader records where its epoch starts (KIP-101 leader epoch cache)."""
        if not self.epochs or self.epochs[-1][0] < epoch:
            self.epochs.append((epoch, self.leo))

    # --- reads ---------------------------------------------------------------------------------
    def pieces(self, start: int, end: int) -> list[Piece]:
        """The store pieces holding offsets [start, end)."""
        if end <= start:
            return []
        offs, poss, epochs = self.ext_off, self.ext_pos, self.ext_epoch
        if offs and start >= offs[-1] and end <= self.leo:
            # the usual read: the tail of the last extent (no search)
            return [(start, poss[-1] + (start - offs[-1]), end - start, epochs[-1])]
        k = bisect_right(offs, start) - 1
        out: list[Piece] = []
        n = len(offs)
        while k < n and start < end:
            stop = offs[k + 1] if k + 1 < n else self.leo
            stop = min(stop, end)
            if stop > start:
                out.append((start, poss[k] + (start - offs[k]), stop - start, epochs[k]))
                start = stop
            k += 1
        return out

    def read(self, start: int, end: int, max_bytes: float) -> tuple[list[Piece], float]:
        """Pieces from `start` up to `end` or about `max_bytes` (at least one batch's worth)."""
        offs = self.ext_off
        if offs and offs[-1] <= start < end <= self.leo:
            # the usual read: the tail of the last extent, and it fits (else read_pieces)
            pos = self.ext_pos[-1] + (start - offs[-1])
            size = self.store.bytes_between(pos, pos + end - start)
            if size <= max_bytes or size <= 0:
                return [(start, pos, end - start, self.ext_epoch[-1])], float(size)
        return self.read_pieces(self.pieces(start, end), max_bytes)

    def read_pieces(self, pieces: list[Piece], max_bytes: float) -> tuple[list[Piece], float]:
        """The general read: whole pieces while they fit, then part of the next one (a reader
        always gets at least one record)."""
        if not pieces:
            return pieces, 0.0
        store = self.store
        total = 0.0
        out: list[Piece] = []
        for offset, pos, count, epoch in pieces:
            size = store.bytes_between(pos, pos + count)
            if total + size > max_bytes and size > 0:
                room = max_bytes - total
                take = int(count * room / size)
                if not out and take < 1:
                    take = min(count, max(1, take))
                if take > 0:
                    out.append((offset, pos, take, epoch))
                    total += size * take / count
                break
            out.append((offset, pos, count, epoch))
            total += size
        return out, total

    def ids(self, pieces: list[Piece]) -> np.ndarray:
        """Message ids of these pieces (a view when there is a single piece)."""
        store_ids = self.store.ids
        if len(pieces) == 1:
            _, pos, count, _ = pieces[0]
            return store_ids[pos : pos + count]
        if not pieces:
            return store_ids[0:0]
        return np.concatenate([store_ids[p : p + c] for _, p, c, _ in pieces])

    def epoch_at(self, offset: int) -> int:
        """Leader epoch of the record at `offset` (-1 before the first record)."""
        if offset < 0 or not self.ext_off:
            return -1
        k = bisect_right(self.ext_off, offset) - 1
        return self.ext_epoch[k] if k >= 0 else -1

    @property
    def last_epoch(self) -> int:
        offs = self.ext_off
        if offs and offs[-1] < self.leo:
            return self.ext_epoch[-1]  # the last record is in the last extent (no search)
        return self.epoch_at(self.leo - 1)

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetsForLeaderEpoch (KIP-101): the largest epoch <= `epoch` and where it ends here."""
        cache = self.epochs
        i = len(cache) - 1
        while i >= 0 and cache[i][0] > epoch:
            i -= 1
        if i < 0:
            return -1, self.log_start
        found = cache[i][0]
        end = cache[i + 1][1] if i + 1 < len(cache) else self.leo
        return found, end

    def timestamp_at(self, offset: int) -> float:
        k = bisect_right(self.ext_off, offset) - 1
        if k < 0:
            return -np.inf
        return self.store.timestamp_at(self.ext_pos[k] + offset - self.ext_off[k])

    def bytes_between(self, start: int, end: int) -> float:
        return sum(self.store.bytes_between(p, p + c) for _, p, c, _ in self.pieces(start, end))

    # --- truncation and retention ---------------------------------------------------------------
    def truncate(self, offset: int) -> list[Piece]:
        """Cut the log back to `offset` (a divergent suffix, or what power loss left); returns
        the pieces removed."""
        if offset >= self.leo:
            return []
        offset = max(offset, self.log_start)
        removed = self.pieces(offset, self.leo)
        self.push_to_disk()
        while self.ext_off and self.ext_off[-1] >= offset:
            self.ext_off.pop()
            self.ext_pos.pop()
            self.ext_epoch.pop()
        while self.epochs and self.epochs[-1][1] >= offset:
            self.epochs.pop()  # LeaderEpochFileCache.truncateFromEnd
        self.leo = offset
        self.hw = min(self.hw, offset)
        self.hw_checkpoint = min(self.hw_checkpoint, offset)
        while len(self.segments) > 1 and self.segments[-1].base_offset >= offset:
            self.segments.pop()
        seg = self.segments[-1]
        seg.nbytes = self.bytes_between(seg.base_offset, offset)
        self.nbytes = sum(s.nbytes for s in self.segments)
        self.unflushed = 0
        if self.file.written > offset:
            self.file.disk.truncate(self.file.name, offset)
        return removed

    def delete_old_segments(
        self, now: float, retention_ms: float, retention_bytes: int | None
    ) -> list[Piece]:
        """Retention: delete whole closed segments too old or beyond the size limit, and only
        segments wholly below the high watermark (UnifiedLog.deletableSegments bounds them by
        the HW: records not yet committed are never deleted)."""
        segs = self.segments
        deleted = 0
        while deleted < len(segs) - 1:  # the active segment is never deleted
            if segs[deleted + 1].base_offset > self.hw:
                break
            seg = segs[deleted]
            too_old = seg.max_ts <= now - retention_ms
            too_big = retention_bytes is not None and self.nbytes - seg.nbytes >= retention_bytes
            if not (too_old or too_big):
                break
            self.nbytes -= seg.nbytes
            deleted += 1
        if not deleted:
            return []
        new_start = segs[deleted].base_offset
        removed = self.pieces(self.log_start, new_start)
        del segs[:deleted]
        self.log_start = new_start
        # forget extents wholly below the new log start (keep the one that contains it)
        k = bisect_right(self.ext_off, new_start) - 1
        if k > 0:
            del self.ext_off[:k], self.ext_pos[:k], self.ext_epoch[:k]
        return removed

    def recover(self, written: float) -> list[Piece]:
        """After a restart: the log is what the page cache / disk kept."""
        keep = int(written)
        self.hw = min(self.hw_checkpoint, keep)
        return self.truncate(keep)

    def drop_pending(self) -> None:
        """Forget appends not yet pushed (a power loss hit them before the page cache did)."""
        self._pending_records = 0
        self._pending_bytes = 0.0
