"""With transactions, a reset to latest skips what was processed under an aborted transaction.

The group's committed offset of a transactional pipeline moves only when a transaction commits.
A partition with no committed offset has had no transaction committed: what its owners
processed was written in transactions that were aborted, so the downstream read_committed
reader never saw it. A new owner resetting to `latest` jumps over those records too: they are
skipped (`offset_reset_latest`), like the ones nobody processed.

One consumer reads 3 partitions at 3 ms a record (1000 records/s: far behind), with
fetch.min.bytes at 50 kB so that its first answers are large: its first poll is in progress,
its transaction open, when the consumers are stopped at 0.8 s; they come back 1 s later as new
members and reset to latest.
"""

from __future__ import annotations

from kafka_helpers import events, messages, run_kafka, scenario


def test_records_of_an_aborted_transaction_are_skipped_by_a_reset_to_latest() -> None:
    faults = [{"at_s": 0.8, "kind": "stop", "target": "consumers", "duration_s": 1.0}]
    result = run_kafka(
        scenario(
            faults,
            workload__consumers=1,
            workload__processing_ms=3.0,
            workload__rate_per_s=1000.0,
            kafka__consumer__fetch_min_bytes=50_000,
            kafka__consumer__enable_auto_commit=False,
            kafka__consumer__exactly_once=True,
        )
    )
    aborted = events(result, "transaction_aborted")
    assert len(aborted) > 0 and len(events(result, "offset_reset")) > 0
    m = messages(result)
    # before the fix the aborted transaction's input records (96) were neither delivered nor
    # skipped: in flight forever
    assert m["in_flight"] == 0 and m["lost"] == 0
    assert m["delivered"] + m["skipped_by_cause"]["offset_reset_latest"] == m["produced"]


def test_a_restarted_consumer_never_commits_the_transaction_its_crash_left_open() -> None:
    # both consumers crash at 3 s in the middle of their polls and are back at 3.5 s; each
    # gets its partitions back from the committed offsets, and the transactions the crash left
    # open are aborted (fenced by InitProducerId). Before the fix the restarted consumer, still
    # known by the same name, committed its dead incarnation's open transaction when a
    # rebalance revoked the partition right after handing it over, and then processed those
    # records again: 15 duplicates the read_committed reader saw
    faults = [{"at_s": 3.0, "kind": "consumer_crash", "target": "consumers", "duration_s": 0.5}]
    result = run_kafka(
        scenario(
            faults,
            workload__consumers=2,
            workload__processing_ms=1.0,
            kafka__consumer__enable_auto_commit=False,
            kafka__consumer__exactly_once=True,
        )
    )
    m = messages(result)
    assert m["duplicates"] == 0, m["duplicates_by_cause"]
    assert m["delivered"] == m["produced"]


def test_an_older_transactions_offsets_never_replace_a_newer_ones() -> None:
    # Found by a random run (reduced): consumer1's EndTxn requests crossed a 500 ms delay on
    # the consumers' links; when it ended (the final phase, 2 s) the next EndTxn arrived at
    # once, before those still on their way, whose older offsets then replaced its newer ones
    # in __consumer_offsets. A producer commits one transaction at a time, so that cannot
    # happen: when consumer0's session expired, consumer1 got its partitions back from the
    # stale offset and redid committed work (7 duplicates the read_committed reader saw)
    doc = {
        "system": {"kind": "kafka"},
        "scenario": {"duration_s": 2.0, "warmup_s": 0.5, "drain_s": 20.0},
        "workload": {
            "rate_per_s": 1000.0,
            "arrival": "poisson",
            "producers": 1,
            "consumers": 2,
            "keys": 10,
            "processing_ms": 3.0,
        },
        "kafka": {
            "brokers": 4,
            "topic": {"partitions": 4, "replication_factor": 1, "min_insync_replicas": 1},
            "producer": {"acks": "all", "enable_idempotence": False, "linger_ms": 5.0},
            "consumer": {
                "enable_auto_commit": False,
                "max_poll_records": 5,
                "exactly_once": True,
                "auto_offset_reset": "earliest",
                "session_timeout_ms": 6000.0,
                "heartbeat_interval_ms": 500.0,
            },
            "broker": {"broker_session_timeout_ms": 3000.0, "broker_heartbeat_interval_ms": 500.0},
        },
        "faults": [
            {"at_s": 0.811, "kind": "delay", "target": "consumers", "delay_ms": 500.0},
            {"at_s": 1.087, "kind": "consumer_crash", "target": "a_consumer"},
        ],
    }
    m = messages(run_kafka(doc, seed=3512))
    assert m["duplicates"] == 0, m["duplicates_by_cause"]
    assert m["delivered"] == m["produced"]
