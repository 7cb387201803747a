"""Log compaction (cleanup.policy=compact): the cleaner keeps the latest record per key.

One producer, one consumer, 200 keys at 1000 records/s over 3 partitions, 16 KiB segments
(~128 records of 128 bytes each) and a cleaner pass every 2 s. A consumer that keeps up reads
every record before the cleaner reaches it; one that is paused for 10 s comes back to a log
whose closed, cleaned segments hold one record per key.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kafka_helpers import messages, run_kafka, scenario

from simulator.scenario import ScenarioError

KEYS = 200
RATE_PER_S = 1000.0
BACKOFF_MS = 2000.0
SEGMENT_BYTES = 16384
RECORD_BYTES = 100 + 8 + 20  # value + key + record overhead (store.py)
PARTITIONS = 3
PAUSE = {"at_s": 6.0, "kind": "pause", "target": "a_consumer", "duration_s": 10.0}


def _run(faults: list[dict[str, Any]], keys: int = KEYS, **settings: Any) -> Any:
    data = scenario(
        faults,
        workload__consumers=1,
        workload__producers=1,
        workload__keys=keys,
        workload__rate_per_s=RATE_PER_S,
        scenario__duration_s=20.0,
        kafka__topic__cleanup_policy="compact",
        kafka__topic__segment_bytes=SEGMENT_BYTES,
        kafka__broker__log_cleaner_backoff_ms=BACKOFF_MS,
        **settings,
    )
    return run_kafka(data)


@pytest.fixture(scope="module")
def caught_up() -> Any:
    return _run([])


@pytest.fixture(scope="module")
def behind() -> Any:
    return _run([PAUSE])


def _latest_per_key_ids(frame: Any) -> np.ndarray:
    return frame.groupby("key")["id"].max().to_numpy()


def test_the_cleaner_runs_and_a_caught_up_consumer_sees_every_record(caught_up: Any) -> None:
    m = messages(caught_up)
    cleaned = caught_up.events[caught_up.events["kind"] == "log_cleaned"]
    assert len(cleaned) > 0  # the cleaner did compact the log meanwhile
    assert m["delivered"] == m["produced"], m
    assert m["superseded"] == 0 and m["lost"] == 0 and m["duplicates"] == 0, m


def test_a_higher_dirty_ratio_makes_the_cleaner_wait_for_more_new_records(
    caught_up: Any,
) -> None:
    # 0.99: a pass needs 99 new records for each one left by the last pass (~67 keys per
    # partition), i.e. ~6600 records per partition, ~20 s at 333 records/s: 0 or 1 pass per
    # partition instead of one every 2 s.
    lazy = _run([], kafka__topic__min_cleanable_dirty_ratio=0.99)
    passes = len(lazy.events[lazy.events["kind"] == "log_cleaned"])
    eager = len(caught_up.events[caught_up.events["kind"] == "log_cleaned"])
    assert passes <= 2 * PARTITIONS < eager, (passes, eager)


def test_compaction_keeps_the_last_value_of_every_key(behind: Any) -> None:
    frame = behind.messages
    last = frame.set_index("id").loc[_latest_per_key_ids(frame)]
    assert len(last) == KEYS
    # the latest record of every key survives and is read
    assert (last["fate"] == "delivered").all(), last["fate"].value_counts()
    # every record the cleaner removed has a later record of the same key (one producer per
    # key: ids are in per-key order)
    superseded = frame[frame["fate"] == "superseded"]
    assert len(superseded) > 0
    latest_id = frame.groupby("key")["id"].max()
    assert (superseded["id"].to_numpy() < latest_id.loc[superseded["key"]].to_numpy()).all()
    assert set(superseded["cause"]) == {"compacted"}


def test_a_consumer_that_is_behind_sees_only_the_latest_record_per_key(
    caught_up: Any, behind: Any
) -> None:
    m = messages(behind)
    assert m["lost"] == 0 and m["skipped"] == 0 and m["in_flight"] == 0, m
    frame = behind.messages
    begin, end = PAUSE["at_s"] * 1000.0, (PAUSE["at_s"] + PAUSE["duration_s"]) * 1000.0
    window = frame[(frame["intended_ms"] >= begin) & (frame["intended_ms"] < end - BACKOFF_MS)]
    delivered = int((window["fate"] == "delivered").sum())
    # Of what was written while it was away, the consumer reads one record per key from the
    # cleaned segments, plus what the cleaner had not reached: the last backoff's records
    # (excluded from the window) and the active segment of each partition.
    bound = KEYS + PARTITIONS * SEGMENT_BYTES // RECORD_BYTES
    assert delivered <= bound, (delivered, bound, len(window))
    assert len(window) > 5 * bound  # ~8000 records: the bound is a real reduction
    # the same window is read in full by a consumer that keeps up
    same = caught_up.messages
    in_window = (same["intended_ms"] >= begin) & (same["intended_ms"] < end - BACKOFF_MS)
    assert (same[in_window]["fate"] == "delivered").all()


# A tombstone outlives compaction only as the last record of its key: with 5000 keys each key is
# written ~4 times in the 20 s, so ~20% of the keys end on a tombstone that nothing supersedes.
def test_tombstones_are_removed_after_delete_retention() -> None:
    result = _run(
        [PAUSE],
        keys=5000,
        kafka__producer__tombstone_ratio=0.2,
        kafka__topic__delete_retention_ms=3000.0,
    )
    m = messages(result)
    assert m["superseded_by_cause"].get("tombstone_removed", 0) > 0, m
    assert m["lost"] == 0


def test_tombstones_are_kept_within_delete_retention() -> None:
    result = _run([PAUSE], keys=5000, kafka__producer__tombstone_ratio=0.2)  # 1 day by default
    assert messages(result)["superseded_by_cause"].get("tombstone_removed", 0) == 0


def test_a_bad_dirty_ratio_is_rejected_with_its_field() -> None:
    with pytest.raises(ScenarioError, match="min_cleanable_dirty_ratio"):
        run_kafka(scenario(kafka__topic__min_cleanable_dirty_ratio=1.5))
