"""What Redis holds in memory, and the journal of writes that persistence copies to disk.

The journal is the sequence of dataset changes in execution order: exactly what the AOF
appends (every write, the RPOP a BRPOP turned into, the DEL of an expired or evicted key). A
position in it is an AOF offset in commands; RDB snapshots and restarts refer to positions. The
dataset at any position is its base image plus the journal up to that position, so a restart
that recovers position p rebuilds exactly the state of p, and every journal entry after p is
what the restart lost.

Entries are int64: `(id << 3) | (retry << 2) | kind` with kind WRITE (message id), POP (message
id), DEL (key) or GROUP (a stream consumer group change: `streams.group_entry`); `retry` marks a
copy written by a client retry (for duplicate causes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

WRITE, POP, DEL, GROUP = 0, 1, 2, 3
RETRY_BIT = 4


def encode(values: np.ndarray, kind: int, retry: np.ndarray | None = None) -> np.ndarray:
    entries = (values.astype(np.int64) << 3) | kind
    if retry is not None:
        entries |= retry.astype(np.int64) << 2
    return entries


def decode(entries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, kind, retry) of journal entries."""
    return entries >> 3, entries & 3, (entries & RETRY_BIT) != 0


class Journal:
    """Dataset changes since `base` (the position of the base image), in execution order."""

    def __init__(self, base: int = 0):
        self.base = base
        self._chunks: list[np.ndarray] = []
        self._size = 0

    @property
    def end(self) -> int:
        return self.base + self._size

    def append(self, entries: np.ndarray) -> None:
        if entries.size:
            self._chunks.append(entries.astype(np.int64, copy=False))
            self._size += int(entries.size)

    def entries(self, begin: int | None = None, end: int | None = None) -> np.ndarray:
        """Entries at positions [begin, end) (defaults: the whole journal)."""
        begin = self.base if begin is None else max(begin, self.base)
        end = self.end if end is None else min(end, self.end)
        if end <= begin:
            return np.zeros(0, dtype=np.int64)
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0][begin - self.base : end - self.base]

    def truncate(self, position: int) -> np.ndarray:
        """Drop entries from `position` on (a restart that recovered less); returns them."""
        dropped = self.entries(position).copy()
        kept = self.entries(self.base, position).copy()
        self._chunks = [kept] if kept.size else []
        self._size = int(kept.size)
        return dropped

    def drop_before(self, position: int) -> np.ndarray:
        """Forget entries before `position` (folded into the base image); returns them."""
        position = min(position, self.end)
        folded = self.entries(self.base, position).copy()
        rest = self.entries(position).copy()
        self._chunks = [rest] if rest.size else []
        self._size = int(rest.size)
        self.base = position
        return folded

    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._chunks)


@dataclass
class Image:
    """The dataset at one journal position (a snapshot's content, a restart's starting point)."""

    position: int
    value: np.ndarray  # per workload key: message id of the current value, -1 = absent
    expire_at: np.ndarray  # per key: absolute expiry (ms), inf = no TTL
    applied: np.ndarray  # INCR: every applied increment's id (with retry bit) in order
    items: np.ndarray  # list: queued items (id << 1 | retry), oldest first
    background_keys: int  # keys of the initial dataset still present
    extra: dict[str, Any] = field(default_factory=dict)

    def copy(self) -> Image:
        return Image(
            self.position,
            self.value.copy(),
            self.expire_at.copy(),
            self.applied.copy(),
            self.items.copy(),
            self.background_keys,
            dict(self.extra),
        )


def empty_image(n_keys: int, background_keys: int, position: int = 0) -> Image:
    return Image(
        position,
        np.full(n_keys, -1, dtype=np.int64),
        np.full(n_keys, np.inf),
        np.zeros(0, dtype=np.int64),
        np.zeros(0, dtype=np.int64),
        background_keys,
    )


def last_per_key(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys, the last value given for each): "last write wins" in execution order."""
    if keys.size == 0:
        return keys, values
    last = np.full(int(keys.max()) + 1, -1, dtype=np.int64)
    positions = np.arange(keys.size)
    np.maximum.at(last, keys, positions)
    mine = np.flatnonzero(last[keys] == positions)
    return keys[mine], values[mine]


def replay(
    image: Image,
    entries: np.ndarray,
    mode: str,
    key_of: np.ndarray,
    expire_of: np.ndarray | None = None,
) -> Image:
    """The image after applying journal `entries` to `image` (vectorized).

    `mode`: "kv" and "cache" (last write or delete of a key wins), "incr" (every increment
    counts), "list" (pushes queue up, pops take the oldest).
    """
    out = image.copy()
    out.position = image.position + int(entries.size)
    if entries.size == 0:
        return out
    value, kind, retry = decode(entries)
    writes = kind == WRITE
    if mode == "incr":
        out.applied = np.concatenate([out.applied, (value[writes] << 1) | retry[writes]])
        return out
    if mode == "list":
        queue = np.concatenate([out.items, (value[writes] << 1) | retry[writes]])
        out.items = queue[int((kind == POP).sum()) :]
        return out
    touched = writes | (kind == DEL)
    if touched.any():
        ids = value[touched]
        is_write = writes[touched]
        keys = np.where(is_write, key_of[np.where(is_write, ids, 0)], ids)
        uniq, last = last_per_key(keys, np.where(is_write, ids, -1))
        out.value[uniq] = last
        if expire_of is not None:
            out.expire_at[uniq] = np.where(last >= 0, expire_of[np.maximum(last, 0)], np.inf)
    return out
