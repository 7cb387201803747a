"""A frozen member that lost its partitions still processes the poll it held, then drops them.

A paused process (a long GC, SIGSTOP) keeps in memory the records its last poll() returned.
When it thaws after its session expired, the application goes on processing them: it learns
that its partitions were handed to another member only at its next poll() (onPartitionsLost).
consumer0 owns partitions 0 and 1 (~1333 records/s) at 0.8 ms a record, so it is always in the
middle of a poll; it is paused at 4 s for 9 s, past session.timeout.ms (6 s), and consumer1
takes its partitions from the committed offsets.
"""

from __future__ import annotations

from typing import Any

from kafka_helpers import messages, run_kafka, scenario

PAUSE = {"at_s": 4.0, "kind": "pause", "target": "a_consumer", "duration_s": 9.0}
CRASH = {**PAUSE, "kind": "consumer_crash"}


def _faulted(fault: dict[str, Any], **commits: Any) -> dict[str, Any]:
    data = scenario(
        [fault],
        workload__consumers=2,
        workload__processing_ms=0.8,
        scenario__duration_s=20.0,
        scenario__drain_s=60.0,
        kafka__consumer__enable_auto_commit=False,
        **commits,
    )
    return messages(run_kafka(data))


def test_a_poll_committed_before_processing_is_finished_by_the_member_after_its_freeze() -> None:
    m = _faulted(PAUSE, kafka__consumer__manual_commit="before_processing")
    # consumer1 starts after the poll consumer0 had committed; consumer0 processes the rest of
    # that poll when it thaws. Before the fix the rest was dropped: never delivered, never
    # skipped, in flight forever (60 records)
    assert m["in_flight"] == 0 and m["skipped"] == 0 and m["lost"] == 0
    assert m["delivered"] == m["produced"] and m["duplicates"] == 0


def test_a_frozen_member_processes_its_poll_twice_where_a_crashed_one_does_it_once() -> None:
    paused = _faulted(PAUSE, kafka__consumer__manual_commit="sync_after_processing")
    crashed = _faulted(CRASH, kafka__consumer__manual_commit="sync_after_processing")
    # consumer1 starts at the beginning of the poll in progress (its commit never came) in both
    # runs, and redoes what consumer0 had processed of it; the frozen consumer0 also processes
    # the rest of that poll when it thaws (the crashed one cannot): more duplicates, all of that
    # one poll on the two partitions (at most 500 records each). Before the fix both runs had
    # the same 33 duplicates
    dups = paused["duplicates_by_cause"]
    assert set(dups) == {"redelivered_after_rebalance"}
    assert dups["redelivered_after_rebalance"] <= 2 * 500
    assert paused["duplicates"] > crashed["duplicates"] > 0
    assert paused["in_flight"] == 0 and paused["lost"] == 0
