"""A read_uncommitted reader's duplicates are named for what caused them.

With acks=1 and no idempotence, a producer whose requests time out while the leader is cut off
retries batches that were written: the input log holds those records twice, and the pipeline
transforms both copies. That is a producer retry, whatever the reader's isolation level: no
transaction was aborted in this run, so none of its duplicates is `aborted_read_uncommitted`.
"""

from __future__ import annotations

from kafka_helpers import messages, run_kafka, scenario


def test_input_duplicates_are_producer_retries_for_both_isolation_levels() -> None:
    causes = {}
    for isolation in ("read_committed", "read_uncommitted"):
        faults = [{"at_s": 3.0, "kind": "partition", "target": "leader", "duration_s": 1.5}]
        result = run_kafka(
            scenario(
                faults,
                kafka__producer__acks="1",
                kafka__producer__request_timeout_ms=200.0,
                kafka__producer__delivery_timeout_ms=5000.0,
                kafka__consumer__enable_auto_commit=False,
                kafka__consumer__exactly_once=True,
                kafka__consumer__output_isolation_level=isolation,
            )
        )
        assert result.summary["model"]["transactions_aborted"] == 0
        causes[isolation] = messages(result)["duplicates_by_cause"]
    # before the fix the read_uncommitted reader's were all `aborted_read_uncommitted`
    assert causes["read_committed"].get("producer_retry", 0) > 0
    assert causes["read_uncommitted"] == causes["read_committed"]
