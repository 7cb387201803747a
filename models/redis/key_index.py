"""The set of present workload keys, in key order, for eviction sampling.

Eviction draws a position among the present keys and needs the key at that position. Scanning
the key space for it costs O(keys) per eviction; a Fenwick tree (binary indexed tree) over
presence flags keeps the count and finds the k-th present key in O(log keys), with O(log keys)
per key that appears or disappears.
"""

from __future__ import annotations

import numpy as np

_BULK_KEYS = 64  # more keys changed at once than this: rebuild the tree when next asked


class PresentKeys:
    """Which of `n_keys` keys hold a value; `kth(d)` is the d-th present key in key order."""

    def __init__(self, n_keys: int):
        self.n_keys = n_keys
        self._flags = bytearray(n_keys)
        self._tree = [0] * (n_keys + 1)  # 1-based: node i counts flags (i - lowbit(i), i]
        self._stale = False  # the tree must be rebuilt from the flags
        self.count = 0
        self._top = 1 << max(n_keys.bit_length() - 1, 0)  # highest power of two <= n_keys

    def add(self, keys: np.ndarray) -> None:
        """Mark `keys` present (those already present stay so)."""
        self._change(keys, 1)

    def remove(self, keys: np.ndarray) -> None:
        """Mark `keys` absent (those already absent stay so)."""
        self._change(keys, 0)

    def set(self, key: int, flag: int) -> None:
        """Mark one key present (1) or absent (0)."""
        if self._flags[key] == flag:
            return
        self._flags[key] = flag
        step = 1 if flag else -1
        self.count += step
        if self._stale:
            return
        tree, n = self._tree, self.n_keys
        i = key + 1
        while i <= n:
            tree[i] += step
            i += i & -i

    def mask(self) -> np.ndarray:
        """Which keys are marked present (a read-only boolean view of the flags)."""
        return np.frombuffer(bytes(self._flags), dtype=bool)

    def clear(self) -> None:
        self._flags = bytearray(self.n_keys)
        self._tree = [0] * (self.n_keys + 1)
        self._stale = False
        self.count = 0

    def _change(self, keys: np.ndarray, flag: int) -> None:
        if keys.size > _BULK_KEYS:
            view = np.frombuffer(self._flags, dtype=np.uint8)
            view[keys] = flag
            self.count = int(np.count_nonzero(view))
            self._stale = True
            return
        for key in keys.tolist():
            self.set(key, flag)

    def _rebuild(self) -> None:
        counts = np.zeros(self.n_keys + 1, dtype=np.int64)
        np.cumsum(np.frombuffer(self._flags, dtype=np.uint8), out=counts[1:])
        node = np.arange(1, self.n_keys + 1)
        self._tree = [0, *(counts[node] - counts[node - (node & -node)]).tolist()]
        self._stale = False

    def kth(self, d: int) -> int:
        """The d-th (from 0) present key in key order; requires 0 <= d < count."""
        if self._stale:
            self._rebuild()
        tree, n = self._tree, self.n_keys
        pos = 0
        bit = self._top
        while bit:
            nxt = pos + bit
            if nxt <= n and tree[nxt] <= d:
                pos = nxt
                d -= tree[nxt]
            bit >>= 1
        return pos  # 1-based position pos + 1 is key pos
