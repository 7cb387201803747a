"""The producer's RecordAccumulator: records waiting per partition until a batch is sent.

The Java producer appends each record to the open batch of its partition; a batch is sendable
when it is full (`batch.size`) or has waited `linger.ms`, and the sender then drains one batch per
partition of every broker that has a sendable one. Here the records of a partition wait as
numpy chunks (ids, send times, cumulative bytes) and a batch is cut from the head of the queue
when it is drained, which gives the same batches without a Python object per record.

A record's clock starts when send() accepted it: its intended time, or later if send() had to
block because `buffer.memory` was full (then `floor` is the time it got in).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque

import numpy as np

INF = float("inf")


class _Chunk:
    """Records added together. Times and cumulative bytes are read through memoryviews: a batch
    cut reads a few scalars, which a memoryview hands out as Python numbers at a fraction of a
    numpy scalar's cost, and `bisect` on it is the binary search `searchsorted` does."""

    __slots__ = ("count", "cum", "floor", "ids", "pos", "times", "total")

    def __init__(self, ids: np.ndarray, times: np.ndarray, sizes: np.ndarray, floor: float):
        self.ids = ids
        self.count = int(ids.shape[0])
        self.times = np.ascontiguousarray(times, dtype=np.float64).data
        # bytes up to and including each record
        self.cum = np.ascontiguousarray(np.cumsum(sizes)).data
        self.total = int(self.cum[-1])
        self.floor = floor
        self.pos = 0


class PartitionQueue:
    """Records of one partition not yet in a sent batch, oldest first."""

    __slots__ = ("chunks",)

    def __init__(self) -> None:
        self.chunks: deque[_Chunk] = deque()

    def add(self, ids: np.ndarray, times: np.ndarray, sizes: np.ndarray, floor: float) -> None:
        if ids.shape[0]:
            self.chunks.append(_Chunk(ids, times, sizes, floor))

    def __bool__(self) -> bool:
        return bool(self.chunks)

    def first_time(self) -> float:
        """When the oldest waiting record was accepted (INF if none)."""
        if not self.chunks:
            return INF
        c = self.chunks[0]
        t = c.times[c.pos]
        return t if t > c.floor else c.floor

    def full_time(self, limit_bytes: float) -> float:
        """When the waiting records first exceed `limit_bytes` (a full batch), INF if not yet."""
        remaining = limit_bytes
        for c in self.chunks:
            base = int(c.cum[c.pos - 1]) if c.pos else 0
            if c.total - base <= remaining:  # the whole chunk fits: no search needed
                remaining -= c.total - base
                continue
            t = c.times[bisect_right(c.cum, base + remaining)]
            return t if t > c.floor else c.floor
        return INF

    def take(self, now: float, limit_bytes: float) -> tuple[np.ndarray, float, float, float] | None:
        """Cut a batch: records accepted by `now`, up to `limit_bytes` (at least one record).

        Returns (ids, bytes, accept time of the first record, newest record time) or None.
        """
        chunks = self.chunks
        if not chunks:
            return None
        first = self.first_time()
        if first > now:
            return None
        parts: list[np.ndarray] = []
        nbytes = 0.0
        newest = first
        room = limit_bytes
        while chunks:
            c = chunks[0]
            if c.floor > now:
                break
            base = int(c.cum[c.pos - 1]) if c.pos else 0
            by_time = bisect_right(c.times, now)
            if c.total - base <= room:  # the rest of the chunk fits: no search by size
                by_size = c.count
            else:
                by_size = bisect_right(c.cum, base + room)
            end = by_time if by_time < by_size else by_size
            if end <= c.pos:
                if parts or by_time <= c.pos:
                    break
                end = c.pos + 1  # one record larger than the batch: it goes alone
            parts.append(c.ids[c.pos : end])
            size = float(c.cum[end - 1] - base)
            nbytes += size
            room -= size
            last_t = c.times[end - 1]
            if last_t > newest:
                newest = last_t
            c.pos = end
            if end == c.count:
                chunks.popleft()
            else:
                break
            if room <= 0:
                break
        if not parts:
            return None
        ids = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return ids, nbytes, first, newest

    def expire(self, accepted_before: float) -> tuple[np.ndarray, float]:
        """Remove records accepted before `accepted_before` (delivery.timeout.ms): ids, bytes."""
        out: list[np.ndarray] = []
        nbytes = 0.0
        chunks = self.chunks
        while chunks:
            c = chunks[0]
            if c.floor >= accepted_before:
                break
            end = bisect_left(c.times, accepted_before)
            if end <= c.pos:
                break
            out.append(c.ids[c.pos : end])
            nbytes += float(c.cum[end - 1] - (c.cum[c.pos - 1] if c.pos else 0))
            c.pos = end
            if end == c.count:
                chunks.popleft()
            else:
                break
        if not out:
            return np.empty(0, dtype=np.int32), 0.0
        return (out[0] if len(out) == 1 else np.concatenate(out)), nbytes

    def waiting(self) -> int:
        return sum(c.count - c.pos for c in self.chunks)
