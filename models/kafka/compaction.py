"""Log compaction (`cleanup.policy=compact`): the log cleaner keeps the latest record per key.

Kafka's cleaner (design doc, "Log Compaction") wakes every `log.cleaner.backoff.ms`, picks a log
whose *dirty* part (records written since its last pass, up to the first uncleanable offset: the
base of the active segment, never above the high watermark) is at least
`min.cleanable.dirty.ratio` of the log, builds an offset map key -> latest offset over the dirty
part, and rewrites every closed segment keeping a record only if no later record of its key
exists. Offsets do not change: a compacted log has gaps, and a consumer reading it simply gets
fewer records. A tombstone (null value) is kept until `delete.retention.ms` after the pass that
first cleaned it (KIP-534's delete horizon), so a consumer that is not too far behind still sees
the delete.

So a consumer that keeps up reads every record before the cleaner touches it, and a consumer that
is behind reads only the latest record of each key: the changelog / event-sourcing lesson.
Records the cleaner removes before anyone read them are *superseded* (cause `compacted`, or
`tombstone_removed`), not lost: a newer record of the same key, or the delete itself, stands for
them.

Simplified (docs/kafka.md): every replica of a partition holds the same records below the HW, so
the cleaner runs once per partition on the leader's log and marks the removed records in the
partition's shared record store (positions): all replicas see the same compaction at the same
time. The dirty ratio counts records (Kafka counts bytes); compaction frees no bytes in the
model's segment sizes; `min.compaction.lag.ms` is 0 (its default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.history import SUPERSEDED, register_cause

if TYPE_CHECKING:
    from models.kafka.cluster import KafkaModel
    from models.kafka.log import Piece, ReplicaLog

COMPACTED = "compacted"
TOMBSTONE_REMOVED = "tombstone_removed"
register_cause(SUPERSEDED, TOMBSTONE_REMOVED)

_HASH = np.uint64(0x9E3779B1)


def is_tombstone(ids: np.ndarray, ratio: float) -> np.ndarray:
    """Whether each record was sent with a null value (`producer.tombstone_ratio` of them)."""
    if ratio <= 0.0:
        return np.zeros(ids.shape[0], dtype=bool)
    h = (ids.astype(np.uint64) * _HASH) & np.uint64(0xFFFFFFFF)
    return h < np.uint64(int(ratio * 2**32))


def _positions(pieces: list[Piece]) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and store positions of every record in these pieces."""
    if not pieces:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    offsets = np.concatenate([np.arange(o, o + c, dtype=np.int64) for o, _, c, _ in pieces])
    positions = np.concatenate([np.arange(p, p + c, dtype=np.int64) for _, p, c, _ in pieces])
    return offsets, positions


class Cleaner:
    """The log cleaner of the compacted topic: one state per partition."""

    def __init__(self, model: KafkaModel):
        self.model = model
        self.env = model.env
        self.topic = model.config.topic
        self.tombstone_ratio = model.config.producer.tombstone_ratio
        n = model.config.topic.partitions
        # per partition: store positions removed by the cleaner (grown with the store)
        self.removed: list[np.ndarray] = [np.zeros(0, dtype=bool) for _ in range(n)]
        self.checkpoint = [0] * n  # cleaner-offset-checkpoint: the log is clean below it
        self.clean_alive = [0] * n  # records left below the checkpoint by the last pass
        self.last_removed = [-1] * n  # highest store position removed (fetches above skip checks)
        # passes per partition: (end offset of the pass, time): a tombstone's delete horizon is
        # the time of the first pass that covered it + delete.retention.ms
        self.passes: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        self.compacted_records = 0
        self.tombstones_removed = 0
        self.env.process(self._run())

    def _run(self) -> Any:
        backoff = self.model.config.broker.log_cleaner_backoff_ms
        while True:
            yield self.env.timeout(backoff)
            self.model.settle_all()  # consumers read what they read before the cleaner ran
            for p in range(len(self.removed)):
                self.clean(p, self.env.now)

    def _mask(self, p: int, size: int) -> np.ndarray:
        mask = self.removed[p]
        if mask.shape[0] < size:
            grown = np.zeros(max(size, 2 * mask.shape[0]), dtype=bool)
            grown[: mask.shape[0]] = mask
            self.removed[p] = mask = grown
        return mask

    def _leader_log(self, p: int) -> ReplicaLog | None:
        leader = self.model.controller.leader_of(p)
        if leader < 0:
            return None
        broker = self.model.brokers[leader]
        rep = broker.replicas.get(p)
        return rep.log if rep is not None and rep.is_leader else None

    def clean(self, p: int, now: float) -> int:
        """One cleaning pass over partition `p` if it is dirty enough; returns records removed."""
        log = self._leader_log(p)
        if log is None:
            return 0
        end = min(log.segments[-1].base_offset, log.hw)  # the active segment is never cleaned
        start = max(self.checkpoint[p], log.log_start)
        if end <= start:
            return 0
        if (end - start) / (
            self.clean_alive[p] + end - start
        ) < self.topic.min_cleanable_dirty_ratio:
            return 0  # not dirty enough (checked before any work, as the cleaner does)
        offsets, positions = _positions(log.pieces(log.log_start, end))
        mask = self._mask(p, log.store.size)
        alive = ~mask[positions]
        dirty = offsets >= start
        n_dirty = int(dirty.sum())
        ids = log.store.ids[positions]
        keys = self.model.ctx.history.key[ids].astype(np.int64)
        # offset map: key -> latest offset in the dirty part
        d_keys, d_offsets = keys[dirty][::-1], offsets[dirty][::-1]
        uniq, first = np.unique(d_keys, return_index=True)
        latest = d_offsets[first]
        k = np.minimum(np.searchsorted(uniq, keys), uniq.shape[0] - 1)
        found = uniq[k] == keys
        superseded = alive & found & (offsets < np.where(found, latest[k], -1))
        # tombstones first cleaned by an earlier pass whose delete horizon has passed
        tombstone = alive & ~superseded & ~dirty & is_tombstone(ids, self.tombstone_ratio)
        if tombstone.any():
            passes = self.passes[p]
            ends = np.array([e for e, _ in passes], dtype=np.int64)
            times = np.array([t for _, t in passes], dtype=np.float64)
            which = np.minimum(np.searchsorted(ends, offsets, side="right"), len(passes) - 1)
            tombstone &= times[which] + self.topic.delete_retention_ms <= now
        self.passes[p].append((end, now))
        self.checkpoint[p] = end
        history = self.model.ctx.history
        gone = np.flatnonzero(superseded | tombstone)
        self.clean_alive[p] = int(alive.sum()) - gone.shape[0]
        if gone.shape[0]:
            mask[positions[gone]] = True
            self.last_removed[p] = max(self.last_removed[p], int(positions[gone].max()))
        if superseded.any():
            history.supersede(ids[superseded].astype(np.int64), COMPACTED, now)
        if tombstone.any():
            history.supersede(ids[tombstone].astype(np.int64), TOMBSTONE_REMOVED, now)
        n_compacted, n_tombstones = int(superseded.sum()), int(tombstone.sum())
        self.compacted_records += n_compacted
        self.tombstones_removed += n_tombstones
        self.model.ctx.event(
            "log_cleaned",
            f"broker{self.model.controller.leader_of(p)}",
            partition=p,
            cleaned_to=end,
            dirty_records=n_dirty,
            compacted=n_compacted,
            tombstones_removed=n_tombstones,
        )
        return n_compacted + n_tombstones

    def visible(self, p: int, pieces: list[Piece], ids: np.ndarray) -> np.ndarray:
        """The ids a fetch of these pieces returns, -1 where the cleaner removed the record."""
        if not pieces or min(pos for _, pos, _, _ in pieces) > self.last_removed[p]:
            return ids  # a caught-up reader: nothing it reads was ever removed
        mask = self.removed[p]
        _, positions = _positions(pieces)
        inside = positions < mask.shape[0]
        gone = np.zeros(positions.shape[0], dtype=bool)
        gone[inside] = mask[positions[inside]]
        if not gone.any():
            return ids
        out = np.array(ids, dtype=np.int32, copy=True)
        out[gone] = -1
        return out


def cleaner_summary(cleaner: Cleaner | None) -> dict[str, int]:
    """The cleaner's counts for the model summary (zeros for a topic that is not compacted)."""
    return {
        "records_compacted": cleaner.compacted_records if cleaner is not None else 0,
        "tombstones_removed": cleaner.tombstones_removed if cleaner is not None else 0,
    }
