"""Redis Cluster key distribution: CRC16 hash slots, hash tags, and slot ranges over masters.

Source: the Redis Cluster specification ("Key distribution model", "Hash tags", appendix A):
`HASH_SLOT = CRC16(key) mod 16384`, where CRC16 is the XMODEM variant (polynomial 0x1021,
initial value 0, no reflection, no final xor; "123456789" -> 0x31C3). If the key contains a
`{`, and a `}` follows it with at least one character between them, only that substring (the
hash tag) is hashed, so `user:{42}:cart` and `user:{42}:orders` share a slot.

The workload's keys are integers; a key `n` is named `key:<n>`, or `{tag<n mod k>}:key:<n>`
with `k` hash tags. Slots are computed with numpy over many names at once (one pass per byte
column) and cached per key.
"""

from __future__ import annotations

import numpy as np

HASH_SLOTS = 16384
_POLY = 0x1021  # CRC-16/XMODEM (CCITT polynomial), as in the spec's appendix


def _crc16_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint16)
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ _POLY) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
        table[byte] = crc
    return table


CRC16_TABLE = _crc16_table()


def crc16(data: bytes) -> int:
    """CRC16-XMODEM of `data` (one key; the vectorized version is `crc16_many`)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ int(CRC16_TABLE[((crc >> 8) ^ byte) & 0xFF])
    return crc


def hash_tag_span(key: bytes) -> tuple[int, int]:
    """The [start, end) bytes of `key` that are hashed: the hash tag if any, else all of it."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return start + 1, end
    return 0, len(key)


def key_slot(key: str | bytes) -> int:
    """CLUSTER KEYSLOT: the hash slot of one key, hash tags included."""
    data = key.encode() if isinstance(key, str) else key
    start, end = hash_tag_span(data)
    return crc16(data[start:end]) % HASH_SLOTS


def crc16_many(names: np.ndarray) -> np.ndarray:
    """CRC16-XMODEM of each name of a bytes array (dtype `S<n>`), honouring hash tags."""
    names = np.asarray(names, dtype=np.bytes_)
    n = names.size
    width = max(names.dtype.itemsize, 1)
    matrix = names.astype(f"S{width}").view(np.uint8).reshape(n, width)
    length = np.char.str_len(names)
    open_at = np.char.find(names, b"{")
    close_at = np.char.find(names, b"}", start=np.maximum(open_at + 1, 0))
    tagged = (open_at >= 0) & (close_at > open_at + 1)
    lo = np.where(tagged, open_at + 1, 0)
    hi = np.where(tagged, close_at, length)
    crc = np.zeros(n, dtype=np.uint32)
    table = CRC16_TABLE.astype(np.uint32)
    for col in range(width):
        active = (col >= lo) & (col < hi)
        if not active.any():
            continue
        byte = matrix[:, col].astype(np.uint32)
        updated = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ byte) & 0xFF]
        crc = np.where(active, updated, crc)
    return crc.astype(np.uint16)


def key_names(keys: np.ndarray, hash_tags: int = 0) -> np.ndarray:
    """The names of workload keys as a bytes array: `key:<n>`, or with `hash_tags` k > 0
    `{tag<n mod k>}:key:<n>` (keys of one tag share a slot)."""
    keys = np.asarray(keys, dtype=np.int64)
    names = np.char.add(b"key:", keys.astype("S20"))
    if hash_tags > 0:
        tags = np.char.add(np.char.add(b"{tag", (keys % hash_tags).astype("S20")), b"}:")
        names = np.char.add(tags, names)
    return names


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """Slots [first, last] of each master, split evenly in order (as `redis-cli --cluster
    create` assigns them: 3 masters get 0-5460, 5461-10922, 10923-16383)."""
    if not 1 <= masters <= HASH_SLOTS:
        raise ValueError(f"masters must be in 1..{HASH_SLOTS}, got {masters}")
    per_master = HASH_SLOTS / masters
    ranges = []
    first = 0
    for i in range(masters):
        last = HASH_SLOTS - 1 if i == masters - 1 else round((i + 1) * per_master) - 1
        last = max(last, first)
        ranges.append((first, last))
        first = last + 1
    return ranges


def initial_ranges(masters: int, empty_masters: int = 0) -> list[tuple[int, int]]:
    """Slots [first, last] of each master at the start: the first `masters - empty_masters`
    share them as `--cluster create` does; masters added later own none (first > last)."""
    ranges = slot_ranges(masters - empty_masters)
    return ranges + [(HASH_SLOTS, HASH_SLOTS - 1)] * empty_masters


def describe_slots(slots: np.ndarray) -> str:
    """Sorted slot numbers as CLUSTER NODES prints them: `0-5460`, `0-99 8192-16383`."""
    if not slots.size:
        return "none"
    breaks = np.flatnonzero(np.diff(slots) != 1)
    starts = np.r_[slots[0], slots[breaks + 1]]
    ends = np.r_[slots[breaks], slots[-1]]
    parts = [
        f"{a}-{b}" if b > a else f"{a}" for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    ]
    if len(parts) > 4:
        parts = [*parts[:3], f"... ({slots.size} slots)"]
    return " ".join(parts)


class SlotMap:
    """Which master owns each hash slot, what the clients believe, and which slot migrates.

    `owner` is the cluster's configuration (a slot changes owner at CLUSTER SETSLOT NODE);
    `client_owner` is the clients' cached map (CLUSTER SHARDS), refreshed after a -MOVED;
    `migrating_to` names the importing master of a slot in MIGRATING state (-1: none).
    """

    def __init__(self, masters: int, keys: int, hash_tags: int = 0, empty_masters: int = 0):
        self.ranges = initial_ranges(masters, empty_masters)
        self.hash_tags = hash_tags
        owner = np.empty(HASH_SLOTS, dtype=np.int16)
        for shard, (first, last) in enumerate(self.ranges):
            owner[first : last + 1] = shard
        self.owner = owner
        self.client_owner = owner.copy()
        self.migrating_to = np.full(HASH_SLOTS, -1, dtype=np.int16)
        self.n_keys = keys
        self._slots = np.full(keys, -1, dtype=np.int32)
        self._by_slot: tuple[np.ndarray, np.ndarray] | None = None

    def slots(self, keys: np.ndarray) -> np.ndarray:
        """The hash slot of each workload key."""
        keys = np.asarray(keys, dtype=np.int64)
        slots = self._slots[keys]
        missing = slots < 0
        if missing.any():
            new = np.unique(keys[missing])
            self._slots[new] = crc16_many(key_names(new, self.hash_tags)) % HASH_SLOTS
            slots = self._slots[keys]
        return slots

    def shards(self, keys: np.ndarray) -> np.ndarray:
        """The shard the clients send each workload key to (their cached slot map)."""
        return self.client_owner[self.slots(keys)]

    def owners(self, keys: np.ndarray) -> np.ndarray:
        """The shard that owns each key's slot in the cluster's configuration."""
        return self.owner[self.slots(keys)]

    def keys_in_slot(self, slot: int) -> np.ndarray:
        """Every workload key whose name hashes to `slot` (CLUSTER COUNTKEYSINSLOT's domain)."""
        if self._by_slot is None:
            all_slots = self.slots(np.arange(self.n_keys))
            order = np.argsort(all_slots, kind="stable")
            bounds = np.searchsorted(all_slots[order], np.arange(HASH_SLOTS + 1))
            self._by_slot = (order.astype(np.int64), bounds)
        order, bounds = self._by_slot
        return order[bounds[slot] : bounds[slot + 1]]

    def slots_of(self, shard: int) -> np.ndarray:
        """The slots `shard` owns now."""
        return np.flatnonzero(self.owner == shard)

    def refresh_clients(self) -> None:
        """The clients fetched the cluster's slot map (CLUSTER SHARDS)."""
        self.client_owner[:] = self.owner
