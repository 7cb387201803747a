"""Retention deletes whole old segments; what a slow consumer had not read yet is lost."""

from __future__ import annotations

from typing import Any

from kafka_helpers import events, messages, run_kafka, scenario


def _slow_consumer(faults: list[dict[str, Any]] | None = None, **settings: Any) -> Any:
    # 1 consumer for 3 partitions at 2 ms a record: it keeps up with 500 of the 1000 records/s,
    # so after a few seconds it reads data older than retention.ms (1.5 s); segments of 16 KiB
    # (~125 records) roll every ~0.4 s and retention looks every 0.5 s
    return run_kafka(
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
            **settings,
        )
    )


def test_retention_deletes_segments_a_slow_consumer_had_not_read_and_those_records_are_lost() -> (
    None
):
    result = _slow_consumer(kafka__consumer__auto_offset_reset="earliest")
    m = messages(result)
    assert len(events(result, "segments_deleted")) > 0
    assert m["lost_by_cause"].get("deleted_by_retention", 0) > 0
    assert m["lost"] == m["lost_by_cause"]["deleted_by_retention"]
    assert m["skipped"] == 0  # earliest: the consumer goes on from the new log start


def test_offset_reset_to_latest_skips_what_is_still_in_the_log() -> None:
    m = messages(_slow_consumer(kafka__consumer__auto_offset_reset="latest"))
    assert m["skipped_by_cause"].get("offset_reset_latest", 0) > 0


def test_retention_never_deletes_records_above_the_high_watermark() -> None:
    """Kafka deletes only segments wholly below the high watermark (UnifiedLog.deletableSegments):
    a leader whose follower lags (a 500 ms delay on its link) keeps the segments the HW has not
    passed, however old. (It deleted them: the log start passed the HW and the run stopped on
    the invariant log start <= HW <= LEO.)"""
    # the slow consumer's scenario with a follower 500 ms away: the HW lags the log end
    result = _slow_consumer(
        [{"at_s": 1.0, "kind": "delay", "target": "a_follower", "delay_ms": 500.0}]
    )  # invariants checked on every sample
    assert messages(result)["lost_by_cause"].get("deleted_by_retention", 0) > 0
