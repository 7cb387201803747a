"""auto.offset.reset=latest goes to the high watermark, as ListOffsets answers a consumer.

Kafka's ListOffsets(LATEST) from a consumer (isolation level read_uncommitted) answers the
partition's high watermark, not its log end offset (`Partition.fetchOffsetForTimestamp`): the
records above the HW are not committed yet, and the consumer reads them once they are. With
acks=all a record is acknowledged only after the HW passed it, so a record acknowledged well
after a reset cannot have been below the HW when the consumer jumped: skipping it is wrong.
Both ways a consumer resets are pinned here: a new owner with no committed offset, and a fetch
out of range after retention deleted what it was about to read. A follower delayed by 500 ms
keeps the HW ~1 s of records behind the log end meanwhile (150 ms: ~300 ms).
"""

from __future__ import annotations

from typing import Any

from kafka_helpers import events, messages, run_kafka, scenario

# a record whose HW advance came before the reset is acknowledged within one answer's trip
# (well under 50 ms here); one above the HW then waits for the delayed follower (~1 s)
ANSWER_MS = 50.0
SLOW_FOLLOWER = {"kind": "delay", "target": "a_follower", "delay_ms": 500.0}


def _latest_skips(result: Any, reason: str | None) -> tuple[Any, float]:
    """The records skipped by a reset to latest, and when the first such reset happened."""
    resets = events(result, "offset_reset")
    if reason is not None:
        resets = resets[resets["detail"].str.contains(reason)]
    assert len(resets) > 0
    frame = result.messages
    return frame[frame["cause"] == "offset_reset_latest"], float(resets["t_ms"].min())


def test_a_new_owner_without_committed_offset_starts_at_the_high_watermark() -> None:
    # consumer0 crashes at 2 s, before the first auto-commit (at 4 s): its partitions have no
    # committed offset when consumer1 takes them at ~8 s, while the HW lags the log end
    faults = [
        {"at_s": 2.0, "kind": "consumer_crash", "target": "a_consumer"},
        {"at_s": 6.0, "duration_s": 4.0, **SLOW_FOLLOWER},
    ]
    result = run_kafka(scenario(faults, workload__consumers=2, scenario__drain_s=30.0))
    skipped, reset_ms = _latest_skips(result, "no_commit")
    assert len(skipped) > 0
    # before the fix the reset went to the log end: records acknowledged ~1 s later skipped
    assert float(skipped["ack_ms"].max()) <= reset_ms + ANSWER_MS
    assert messages(result)["in_flight"] == 0


def test_an_offset_out_of_range_resets_to_the_high_watermark() -> None:
    # one consumer for 3 partitions at 2 ms a record keeps up with half of the 1000 records/s:
    # retention (1.5 s) deletes what it was about to read, and it resets to latest
    # (a follower 150 ms away keeps ~300 ms of records above the HW: retention, deleting
    # segments older than 1.5 s, stays below it)
    faults = [{"at_s": 1.0, "duration_s": 5.0, **SLOW_FOLLOWER, "delay_ms": 150.0}]
    result = run_kafka(
        scenario(
            faults,
            scenario__duration_s=6.0,
            scenario__drain_s=20.0,
            workload__rate_per_s=1000.0,
            workload__consumers=1,
            workload__processing_ms=2.0,
            kafka__topic__retention_ms=1500.0,
            kafka__topic__segment_bytes=16384,
            kafka__broker__log_retention_check_interval_ms=500.0,
            kafka__consumer__auto_offset_reset="latest",
        )
    )
    skipped, _ = _latest_skips(result, None)
    assert len(skipped) > 0
    resets = events(result, "offset_reset")["t_ms"].to_numpy()
    # each skipped record was acknowledged (its HW advance) before the reset that skipped it
    ack = skipped["ack_ms"].to_numpy()
    after = resets[None, :] + ANSWER_MS >= ack[:, None]
    assert bool(after.any(axis=1).all())
