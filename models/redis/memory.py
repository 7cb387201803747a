"""Memory accounting, `maxmemory` eviction by sampling, and TTL expiry.

Redis does not keep an exact LRU list: to evict, it samples `maxmemory-samples` keys (5) and
evicts the best candidate among them (the longest idle for LRU, the lowest access-frequency
counter for LFU, the nearest expiry for volatile-ttl, any for random), repeating until memory
is under the limit (evict.c; docs "Key eviction"). Real Redis also keeps a pool of 16 good
candidates between rounds; the model samples afresh each time, which is slightly further from
true LRU. Keys of the initial dataset (`dataset_keys`) were never touched during the run, so
LRU sees them as the idlest. An evicted or expired value is not lost: it is superseded by
design (a later read is a miss).

LFU follows evict.c: a logarithmic 8-bit counter (`lfu-log-factor`), new keys start at 5, and
the counter decays by one per `lfu-decay-time` minutes of idleness.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from models.redis.commands import KEY_NAME_BYTES
from models.redis.key_index import PresentKeys

if TYPE_CHECKING:
    from models.redis.config import RedisConfig

BASELINE_BYTES = 1_000_000  # used_memory of an empty Redis 7 (INFO memory, ~0.9 MB)
LFU_INIT_VAL = 5
_FEW_KEYS = 8  # up to this many keys, per-key Python beats numpy calls on tiny arrays


class Memory:
    """Bytes in use and the per-key facts eviction looks at."""

    def __init__(self, config: RedisConfig, n_keys: int, rng: np.random.Generator):
        self.config = config
        self.rng = rng
        self.maxmemory = config.maxmemory_bytes
        self.policy = config.maxmemory_policy
        self.samples = config.maxmemory_samples
        self.overhead = config.key_overhead_bytes + KEY_NAME_BYTES
        self.background_key_bytes = config.dataset_value_bytes + self.overhead
        self.n_keys = n_keys
        self.size = np.zeros(n_keys, dtype=np.int64)  # value bytes of each present key
        self.workload_bytes = 0  # sum over present workload keys of (value + overhead)
        self.list_bytes = 0
        self.background_keys = config.dataset_keys
        tracking = self.maxmemory > 0 and self.policy != "noeviction"
        self.track_access = tracking and ("lru" in self.policy or "lfu" in self.policy)
        self.last_access = np.full(n_keys, -np.inf) if self.track_access else None
        self.lfu = np.full(n_keys, LFU_INIT_VAL, dtype=np.float64) if self.track_access else None
        # allkeys-* policies sample among all present keys: kept as an index (volatile-* ones
        # sample among keys with a TTL and scan for them)
        allkeys = tracking and not self.policy.startswith("volatile")
        self.present = PresentKeys(n_keys) if allkeys else None

    # --- accounting ----------------------------------------------------------------------------
    @property
    def used(self) -> float:
        """INFO used_memory: baseline + dataset (+ list items)."""
        return (
            BASELINE_BYTES
            + self.background_keys * self.background_key_bytes
            + self.workload_bytes
            + self.list_bytes
        )

    @property
    def dataset_bytes(self) -> float:
        """Bytes of keys and values a snapshot serializes (no allocator overhead)."""
        return self.used - BASELINE_BYTES

    @property
    def limited(self) -> bool:
        return self.maxmemory > 0

    def over_limit(self) -> bool:
        return self.maxmemory > 0 and self.used > self.maxmemory

    def set_values(self, keys: np.ndarray, nbytes: np.ndarray, present: np.ndarray) -> None:
        """Account for writes of `keys` (distinct) with new sizes; `present`: key existed."""
        if keys.size <= _FEW_KEYS:  # (integer sums: the same total key by key)
            for key, size, existed in zip(
                keys.tolist(), nbytes.tolist(), present.tolist(), strict=True
            ):
                self.set_value(key, size, existed)
            return
        old = np.where(present, self.size[keys] + self.overhead, 0)
        self.size[keys] = nbytes
        self.workload_bytes += int((nbytes + self.overhead).sum() - old.sum())
        if self.present is not None:
            self.present.add(keys)

    def set_value(self, key: int, nbytes: int, present: bool) -> None:
        """`set_values` of one key (commands applied one by one)."""
        old = int(self.size[key]) + self.overhead if present else 0
        self.size[key] = nbytes
        self.workload_bytes += int(nbytes + self.overhead - old)
        if self.present is not None:
            self.present.set(key, 1)

    def delete_one(self, key: int) -> None:
        self.workload_bytes -= int(self.size[key]) + self.overhead
        self.size[key] = 0
        if self.present is not None:
            self.present.set(key, 0)

    def delete(self, keys: np.ndarray) -> None:
        self.workload_bytes -= int((self.size[keys] + self.overhead).sum())
        self.size[keys] = 0
        if self.present is not None:
            self.present.remove(keys)

    def reset(self, background_keys: int) -> None:
        self.size[:] = 0
        self.workload_bytes = 0
        self.list_bytes = 0
        self.background_keys = background_keys
        if self.present is not None:
            self.present.clear()

    # --- access tracking (LRU clock, LFU counter) -----------------------------------------------
    def touch(self, keys: np.ndarray, t_ms: float) -> None:
        if not self.track_access or keys.size == 0:
            return
        assert self.last_access is not None and self.lfu is not None
        if "lfu" in self.policy:
            counter = self._decayed(keys, t_ms)
            # LFULogIncr: p = 1 / ((counter - LFU_INIT_VAL) * lfu_log_factor + 1)
            base = np.maximum(counter - LFU_INIT_VAL, 0.0)
            p = 1.0 / (base * self.config.lfu_log_factor + 1.0)
            bump = (self.rng.random(keys.size) < p) & (counter < 255)
            np.add.at(counter, np.flatnonzero(bump), 1.0)
            self.lfu[keys] = counter
        self.last_access[keys] = t_ms

    def touch_one(self, key: int, t_ms: float) -> None:
        if not self.track_access:
            return
        if "lfu" in self.policy:  # (the counter's random increment: as for several keys)
            self.touch(np.array([key]), t_ms)
            return
        assert self.last_access is not None
        self.last_access[key] = t_ms

    def _decayed(self, keys: np.ndarray, t_ms: float) -> np.ndarray:
        assert self.lfu is not None and self.last_access is not None
        counter = self.lfu[keys].copy()
        if self.config.lfu_decay_time > 0:
            idle_min = np.maximum(0.0, t_ms - np.nan_to_num(self.last_access[keys], neginf=t_ms))
            counter = np.maximum(
                0.0, counter - np.floor(idle_min / 60_000.0 / self.config.lfu_decay_time)
            )
        return counter

    # --- eviction --------------------------------------------------------------------------------
    def pick_victim(self, value: np.ndarray, expire_at: np.ndarray, t_ms: float) -> int | None:
        """One key to evict by sampling; -1 means a key of the initial dataset; None: nothing.

        `value` is the value id of each workload key (-1: absent); `expire_at` their expiry
        (inf = no TTL). A sample is a position among the candidate keys in key order.
        """
        kth: Callable[[int], int]
        if self.present is not None:
            n_work, n_bg = self.present.count, self.background_keys
            kth = self.present.kth
        else:  # volatile-*: the keys with a TTL
            workload_idx = np.flatnonzero((value >= 0) & np.isfinite(expire_at))
            n_work, n_bg = int(workload_idx.size), 0
            kth = workload_idx.item
        if n_work + n_bg == 0:
            return None
        draws = self.rng.integers(0, n_work + n_bg, size=self.samples)
        picks = [kth(d) if d < n_work else -1 for d in draws.tolist()]
        if self.policy.endswith("random"):
            return picks[0]
        # the first sample with the best score wins (as np.argmax / np.argmin would pick)
        samples = range(len(picks))
        if self.policy.endswith("lru"):
            assert self.last_access is not None
            idle = [np.inf if k < 0 else t_ms - self.last_access[k] for k in picks]
            return picks[max(samples, key=idle.__getitem__)]
        if self.policy.endswith("lfu"):
            lfu = [-1.0 if k < 0 else float(self._decayed(np.array([k]), t_ms)[0]) for k in picks]
            return picks[min(samples, key=lfu.__getitem__)]
        ttl = [expire_at[k] for k in picks]  # volatile-ttl
        return picks[min(samples, key=ttl.__getitem__)]
