"""The partition log: extents over the shared store, epochs (KIP-101), truncation, retention;
and the producer's accumulator cutting batches."""

from __future__ import annotations

import numpy as np

from models.kafka.accumulator import PartitionQueue
from models.kafka.log import ReplicaLog
from models.kafka.store import RecordStore
from simulator.context import RunContext
from simulator.disk import Disk
from simulator.scenario import load_scenario


def make_logs(n: int = 2) -> tuple[RecordStore, list[ReplicaLog]]:
    ctx = RunContext(load_scenario({"system": {"kind": "kafka"}}))
    store = RecordStore()
    logs = []
    for i in range(n):
        disk = Disk(ctx, f"d{i}", ctx.spec.disk)
        logs.append(ReplicaLog(store, disk.file("p0.log"), segment_bytes=1000, segment_ms=1e12))
    return store, logs


def append(
    store: RecordStore, log: ReplicaLog, first_id: int, count: int, epoch: int, t: float = 0.0
) -> int:
    ids = np.arange(first_id, first_id + count, dtype=np.int32)
    pos = store.append(ids, 100 * count, -1, 0, t)
    return log.append_batch(pos, count, 100 * count, epoch, t, t)


def test_follower_copies_extents_not_records() -> None:
    store, (leader, follower) = make_logs()
    for k in range(5):
        append(store, leader, 10 * k, 10, epoch=0)
    pieces, nbytes = leader.read(0, leader.leo, max_bytes=1e9)
    assert len(pieces) == 1 and nbytes == 5000  # one contiguous extent
    follower.append_pieces(pieces, nbytes, 0.0, 0.0)
    assert follower.leo == 50
    assert np.array_equal(follower.ids(follower.pieces(0, 50)), np.arange(50))
    assert store.ids.shape[0] >= 50 and store.size == 50  # stored once


def test_truncation_drops_only_the_divergent_suffix_and_its_epochs() -> None:
    store, (old, new) = make_logs()
    append(store, old, 0, 10, epoch=0)
    new.append_pieces(old.pieces(0, 10), 1000, 0.0, 0.0)
    append(store, old, 10, 5, epoch=0)  # only the old leader has 10..14
    new.start_epoch(1)
    append(store, new, 100, 3, epoch=1)  # the new leader writes 10..12 in epoch 1
    assert new.end_offset_for_epoch(0) == (0, 10)  # KIP-101: epoch 0 ends at 10 on the leader
    removed = old.truncate(10)
    assert sum(c for _, _, c, _ in removed) == 5
    assert np.array_equal(old.ids(removed), np.arange(10, 15))
    assert old.leo == 10 and old.last_epoch == 0
    old.append_pieces(new.pieces(10, 13), 300, 0.0, 0.0)
    assert np.array_equal(old.ids(old.pieces(0, 13)), np.r_[np.arange(10), 100, 101, 102])
    assert old.epochs == [(0, 0), (1, 10)]


def test_retention_deletes_whole_closed_segments_only() -> None:
    store, (log, _) = make_logs()
    for k in range(6):
        append(store, log, 10 * k, 5, epoch=0, t=float(k))  # 500 bytes: a segment per 2 batches
    assert len(log.segments) == 3
    # nothing above the high watermark is deleted: with the HW inside the second segment only
    # the first goes (UnifiedLog.deletableSegments)
    log.hw = 15
    removed = log.delete_old_segments(now=100.0, retention_ms=10.0, retention_bytes=None)
    assert log.log_start == 10 and sum(c for _, _, c, _ in removed) == 10
    log.hw = log.leo
    removed = log.delete_old_segments(now=100.0, retention_ms=10.0, retention_bytes=None)
    assert log.log_start == 20  # the active segment stays even though it is old
    assert sum(c for _, _, c, _ in removed) == 10
    assert len(log.segments) == 1


def test_accumulator_cuts_batches_by_time_and_size() -> None:
    queue = PartitionQueue()
    times = np.array([0.0, 1.0, 2.0, 3.0, 10.0])
    queue.add(np.arange(5, dtype=np.int32), times, np.full(5, 100), -np.inf)
    assert queue.first_time() == 0.0
    assert queue.full_time(250.0) == 2.0  # the third record no longer fits 250 bytes
    cut = queue.take(5.0, 250.0)
    assert cut is not None
    ids, nbytes, first, newest = cut
    assert list(ids) == [0, 1] and nbytes == 200 and first == 0.0 and newest == 1.0
    cut = queue.take(5.0, 1000.0)
    assert cut is not None and list(cut[0]) == [2, 3]  # record 4 is not sent yet at t=5
    assert queue.take(5.0, 1000.0) is None
    expired, nbytes = queue.expire(11.0)
    assert list(expired) == [4] and nbytes == 100


def test_a_read_of_the_last_extent_gives_what_the_general_read_gives() -> None:
    # `read` answers a read inside the last extent without the piece loop: same pieces, same
    # bytes (to the bit), whatever the range and the byte limit
    rng = np.random.default_rng(7)
    store, (log, _) = make_logs()
    offset = 0
    for epoch in (0, 0, 1, 1, 1, 3):
        count = int(rng.integers(1, 40))
        ids = np.arange(offset, offset + count, dtype=np.int32)
        nbytes = int(rng.integers(50, 5000))
        log.append_batch(store.append(ids, nbytes, -1, 0, 0.0), count, nbytes, epoch, 0.0, 0.0)
        offset += count
    last_extent = log.ext_off[-1]
    for _ in range(2000):
        start = int(rng.integers(0, log.leo))
        if rng.random() < 0.5:
            start = max(start, last_extent)  # mostly the reads the shortcut takes
        end = int(rng.integers(start, log.leo + 1))
        max_bytes = float(rng.choice([0.0, 1.0, rng.uniform(1, 3000), 1e9]))
        assert log.read(start, end, max_bytes) == log.read_pieces(log.pieces(start, end), max_bytes)
