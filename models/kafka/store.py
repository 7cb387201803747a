"""The records of one partition, in the order its leaders appended them, shared by its replicas.

Why a shared store: a follower copies record batches from its leader byte for byte, so every
replica of a partition holds the *same* batches at the same offsets, except for suffixes that
diverged after a leader change (KIP-101). Keeping the message ids once per partition and letting
each replica's log map its offsets onto store positions (`log.Extent`) costs 4 bytes per message
whatever the replication factor, and makes a follower's append O(1) instead of a copy.

A batch in the store keeps what the broker needs from a Kafka RecordBatch header: producer id and
base sequence (idempotence), bytes (fetch sizes, segments, retention.bytes) and max timestamp
(time retention). Message ids are the history's ids (int32: at most 50M messages per run).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right

import numpy as np

# RecordBatch header (61 bytes) and the per-record overhead of the v2 format (length, attributes,
# timestamp/offset deltas, key length, headers count: ~10-20 bytes for small records) + an 8-byte
# key: Kafka's own accounting, so that batch.size fills after the same number of records.
BATCH_OVERHEAD_BYTES = 61
RECORD_OVERHEAD_BYTES = 20


class RecordStore:
    """Append-only message ids plus a batch table (producer, sequence, bytes, max timestamp)."""

    __slots__ = (
        "b_count",
        "b_cum_bytes",
        "b_pos",
        "b_producer",
        "b_seq",
        "b_time",
        "ids",
        "size",
        "total_bytes",
    )

    def __init__(self, capacity: int = 1024):
        self.ids = np.empty(max(16, capacity), dtype=np.int32)
        self.size = 0
        self.total_bytes = 0
        self.b_pos = array("q")  # store position of each batch's first record
        self.b_count = array("q")
        self.b_cum_bytes = array("q")  # bytes up to the end of each batch
        self.b_producer = array("q")  # -1: no producer id (idempotence off)
        self.b_seq = array("q")
        self.b_time = array("d")  # max record timestamp (CreateTime) of the batch

    def append(
        self, ids: np.ndarray, nbytes: int, producer_id: int, base_seq: int, max_ts: float
    ) -> int:
        """Store one batch appended by a leader; returns the store position of its first record."""
        n = ids.shape[0]
        pos = self.size
        end = pos + n
        if end > self.ids.shape[0]:
            cap = self.ids.shape[0]
            grown = np.empty(max(end, cap + (cap >> 1)), dtype=np.int32)
            grown[:pos] = self.ids[:pos]
            self.ids = grown
        self.ids[pos:end] = ids
        self.size = end
        self.total_bytes += nbytes
        self.b_pos.append(pos)
        self.b_count.append(n)
        self.b_cum_bytes.append(self.total_bytes)
        self.b_producer.append(producer_id)
        self.b_seq.append(base_seq)
        self.b_time.append(max_ts)
        return pos

    def batch_index(self, pos: int) -> int:
        """Index of the batch holding store position `pos`."""
        return bisect_right(self.b_pos, pos) - 1

    def bytes_before(self, pos: int) -> float:
        """Bytes of all records stored before position `pos` (linear inside a batch)."""
        if pos >= self.size:
            return float(self.total_bytes)
        k = bisect_right(self.b_pos, pos) - 1
        if k < 0:
            return 0.0
        before = self.b_cum_bytes[k - 1] if k else 0
        start = self.b_pos[k]
        if pos == start:
            return float(before)
        return before + (self.b_cum_bytes[k] - before) * (pos - start) / self.b_count[k]

    def bytes_between(self, start: int, end: int) -> float:
        if end <= start:
            return 0.0
        return self.bytes_before(end) - self.bytes_before(start)

    def timestamp_at(self, pos: int) -> float:
        """Max timestamp of the batch holding store position `pos`."""
        k = bisect_right(self.b_pos, pos) - 1
        return self.b_time[k] if k >= 0 else -np.inf

    def nbytes(self) -> int:
        """Memory of this store (ids + batch table)."""
        table = sum(a.itemsize * len(a) for a in (self.b_pos, self.b_count, self.b_cum_bytes))
        table += sum(a.itemsize * len(a) for a in (self.b_producer, self.b_seq, self.b_time))
        return int(self.ids.nbytes) + table
