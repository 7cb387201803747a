"""The simulated twin of test_kafka_consumer_crash (K8): same settings, same kill placement.

The real test kills the consumer shortly (< half an auto-commit interval) after it saw a commit
land, once at least UNCOMMITTED_AT_KILL more records were processed; here the crash is placed
0.5 s after the model's second auto-commit, when ~50 records (100/s) were processed since.
"""

from __future__ import annotations

from kafka_sim import consumer_crash_scenario
from test_kafka_consumer_crash import (
    CONSUMER,
    PROCESSING_MS,
    PRODUCER,
    RECORDS,
    UNCOMMITTED_AT_KILL,
)

from simulator import load_scenario, run

CRASH_AFTER_COMMIT_S = 0.5


def test_sim_consumer_crash_with_auto_commit_redelivers_processed_records() -> None:
    data = consumer_crash_scenario(
        PRODUCER,
        CONSUMER,
        records=RECORDS,
        processing_ms=PROCESSING_MS,
        crash_after_commit_s=CRASH_AFTER_COMMIT_S,
    )
    m = run(load_scenario(data), seed=1, check_invariants=True).summary["messages"]
    assert m["produced"] == RECORDS
    # every record processed at least once, none skipped
    assert m["delivered"] == RECORDS and m["lost"] == 0 and m["skipped"] == 0, m
    duplicates = m["duplicates_by_cause"].get("redelivered_after_consumer_crash", 0)
    # the successor resumes at the committed offset: what was processed since the last commit
    # (0.5 s at 100 records/s) comes again, and only that
    per_s = 1000.0 / PROCESSING_MS
    assert UNCOMMITTED_AT_KILL <= duplicates <= CRASH_AFTER_COMMIT_S * per_s + 2, m
    assert m["duplicates"] == duplicates, "no duplicates of another cause"
