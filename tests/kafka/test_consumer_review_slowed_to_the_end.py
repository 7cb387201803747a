"""A `slow_consumer` fault without a duration lasts until the final phase ends every fault.

From then on the consumer is back at its normal pace, including for the records it had already
fetched: the final phase must not leave it working through a fetched batch at the slowed pace.
"""

from __future__ import annotations

from kafka_helpers import messages, run_kafka, scenario


def test_a_consumer_slowed_until_the_final_phase_drains_at_its_normal_pace() -> None:
    # one consumer, 300 records/s at 1 ms a record (30% busy), slowed 100x from 4 s to the end
    # of the measured phase (8 s): at 100 ms a record it falls ~1200 records behind with up to
    # 500 fetched at a time (50 s of slowed work). At its normal pace the backlog takes ~1.2 s,
    # well inside the 10 s drain; before the fix the fetched batch went on at the slowed pace
    # and most of the backlog ended in flight
    faults = [{"at_s": 4.0, "kind": "slow_consumer", "target": "a_consumer", "factor": 100.0}]
    result = run_kafka(
        scenario(
            faults,
            scenario__duration_s=8.0,
            scenario__drain_s=10.0,
            workload__rate_per_s=300.0,
            workload__consumers=1,
            workload__processing_ms=1.0,
            kafka__consumer__max_poll_interval_ms=600_000.0,
        )
    )
    m = messages(result)
    assert m["in_flight"] == 0 and m["lost"] == 0
    assert m["delivered"] == m["produced"]
