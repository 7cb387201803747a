"""The transactional consume-transform-produce pipeline, judged on its output topic.

Two consumers transform 3 input partitions into 3 output partitions, one transaction per poll
(transactions.py). consumer0 is saturated (0.8 ms a record at 2000 records/s over its 2
partitions) so a crash at 7 s always lands in the middle of a poll. A delivery is the downstream
reader seeing the output record of an input message, so duplicates and loss are those of the
output as that reader sees it.
"""

from __future__ import annotations

from typing import Any

import pytest
from kafka_helpers import events, messages, run_kafka, scenario

from simulator import load_scenario, run
from simulator.scenario import ScenarioError

CONSUMER_CRASH = {"at_s": 7.0, "kind": "consumer_crash", "target": "a_consumer"}
LEADER_CRASH = {"at_s": 5.0, "kind": "crash", "target": "leader", "duration_s": 4.0}


def _pipeline(faults: list[dict[str, Any]], **settings: Any) -> Any:
    base = {
        "workload__consumers": 2,
        "workload__processing_ms": 0.8,
        "scenario__drain_s": 60.0,
        "kafka__consumer__enable_auto_commit": False,
        "kafka__consumer__exactly_once": True,
    }
    return run_kafka(scenario(faults, **{**base, **settings}))


def _no_duplicates_no_loss(result: Any) -> None:
    m = messages(result)
    assert m["duplicates"] == 0, m
    assert m["lost"] == 0 and m["skipped"] == 0 and m["in_flight"] == 0, m
    assert m["delivered"] == m["produced"] - m["failed"] - m["indeterminate"], m


@pytest.fixture(scope="module")
def committed_after_crash() -> Any:
    return _pipeline([CONSUMER_CRASH])


def test_read_committed_output_has_no_duplicates_and_no_loss_after_a_consumer_crash(
    committed_after_crash: Any,
) -> None:
    _no_duplicates_no_loss(committed_after_crash)
    # not vacuous: the crash left a transaction open, with output records written, and the
    # next owner of the partition fenced and aborted it
    model = committed_after_crash.summary["model"]
    assert model["transactions_aborted"] >= 1 and model["aborted_output_records"] > 0, model
    aborted = events(committed_after_crash, "transaction_aborted")
    assert "fenced_by_new_owner" in set(aborted["detail"].str.extract(r'"reason": "(\w+)"')[0])


@pytest.mark.parametrize("broker", ["broker0", "broker1", "broker2"])
def test_read_committed_output_has_no_duplicates_and_no_loss_when_a_broker_crashes(
    broker: str,
) -> None:
    # each broker in turn: one of them leads the input partitions, one coordinates each
    # transactional.id (__transaction_state), one coordinates the group
    crash = {"at_s": 5.0, "kind": "crash", "target": broker, "duration_s": 4.0}
    result = _pipeline([crash])
    _no_duplicates_no_loss(result)
    assert result.summary["model"]["transactions_committed"] > 0


def test_read_committed_output_survives_a_broker_crash_then_a_consumer_crash() -> None:
    _no_duplicates_no_loss(_pipeline([LEADER_CRASH, CONSUMER_CRASH]))


def test_the_same_pipeline_without_transactions_has_duplicates() -> None:
    m = messages(_pipeline([CONSUMER_CRASH], kafka__consumer__exactly_once=False))
    assert m["duplicates_by_cause"].get("redelivered_after_consumer_crash", 0) > 0, m
    assert m["lost"] == 0


def test_without_transactions_a_crash_after_a_leader_change_repeats_at_most_one_poll() -> None:
    # the built-in scenario: the leader of partition 0 changes at 5 s, consumer0 crashes at
    # 10.5 s. commitSync after each poll: only the poll in progress is processed again (the
    # committed offset's leader epoch must be the new one, or the next owner "detects" a
    # truncation and goes back further)
    spec = load_scenario("kafka_transactions_pipeline", ["kafka.consumer.exactly_once=false"])
    m = run(spec, check_invariants=True).summary["messages"]
    duplicates = m["duplicates_by_cause"].get("redelivered_after_consumer_crash", 0)
    assert 0 < duplicates <= spec.system_config.consumer.max_poll_records, m


@pytest.fixture(scope="module")
def uncommitted_after_crash() -> Any:
    return _pipeline([CONSUMER_CRASH], kafka__consumer__output_isolation_level="read_uncommitted")


def test_read_uncommitted_reader_sees_the_aborted_records(
    committed_after_crash: Any, uncommitted_after_crash: Any
) -> None:
    result = uncommitted_after_crash
    m = messages(result)
    aborted = result.summary["model"]["aborted_output_records"]
    assert aborted > 0
    # every aborted output record was seen, then its input was processed again and committed:
    # one extra delivery per aborted record, and nothing else
    assert m["duplicates_by_cause"].get("aborted_read_uncommitted", 0) == aborted, m
    assert m["duplicates"] == aborted
    assert m["lost"] == 0 and m["in_flight"] == 0
    # read_committed, same run otherwise, saw none of them
    assert messages(committed_after_crash)["duplicates"] == 0


# consumer0 frozen (a long GC pause) from 2.5 s to 9.5 s: its session (6 s) expires at 8.5 s and
# consumer1 takes its partitions, fencing its transactional.ids; then it comes back, a zombie
# with a transaction it believes open, and rejoins.
PAUSE = {"at_s": 2.5, "kind": "pause", "target": "a_consumer", "duration_s": 7.0}


def test_a_paused_zombie_is_fenced_and_its_transaction_aborted() -> None:
    result = _pipeline([PAUSE])
    _no_duplicates_no_loss(result)
    aborted = events(result, "transaction_aborted")
    assert len(aborted) >= 1  # the new owner fenced the frozen producer
    assert result.summary["model"]["aborted_output_records"] > 0


def test_the_same_zombie_without_transactions_duplicates() -> None:
    m = messages(_pipeline([PAUSE], kafka__consumer__exactly_once=False))
    assert m["duplicates_by_cause"].get("redelivered_after_rebalance", 0) > 0, m


def test_the_pipeline_is_deterministic(committed_after_crash: Any) -> None:
    again = _pipeline([CONSUMER_CRASH])
    assert again.summary == committed_after_crash.summary


def test_read_committed_sees_a_record_only_once_its_transaction_commits(
    committed_after_crash: Any, uncommitted_after_crash: Any
) -> None:
    # same seed, same processing: the runs differ only in what the reader sees, when.
    committed = committed_after_crash.messages.set_index("id")["deliver_ms"]
    uncommitted = uncommitted_after_crash.messages.set_index("id")["deliver_ms"]
    # the first copy read_uncommitted sees is written when the record is processed; the
    # read_committed reader waits for the end of the poll and the EndTxn to the coordinator
    # (1e-3 ms: times are kept as float32 latencies)
    assert (committed >= uncommitted - 1e-3).all()
    assert (committed - uncommitted).mean() > 0


def test_a_transaction_nobody_takes_over_is_aborted_by_the_timeout() -> None:
    # one consumer, down from 5 s until the end of the measured phase: nobody fences its
    # transactional.ids, the coordinator aborts its open transaction after transaction.timeout.ms
    crash = {"at_s": 5.0, "kind": "consumer_crash", "target": "a_consumer", "duration_s": 5.0}
    result = _pipeline(
        [crash],
        workload__consumers=1,
        workload__processing_ms=0.3,
        kafka__consumer__transaction_timeout_ms=2000.0,
        kafka__broker__transaction_abort_timed_out_transaction_cleanup_interval_ms=1000.0,
    )
    reasons = set(
        events(result, "transaction_aborted")["detail"].str.extract(r'"reason": "(\w+)"')[0]
    )
    assert "transaction_timeout" in reasons, reasons
    _no_duplicates_no_loss(result)


# Per-consumer transactional.ids (KIP-447): consumer0 crashes at 5 s and stays down; consumer1
# (fast enough for the whole load) takes its partitions at 11 s (session 6 s) under its own id,
# so nothing fences consumer0's open transaction until the coordinator's timeout (10 s, checked
# every second) aborts it at ~15 s.
SCOPE_CRASH = {"at_s": 5.0, "kind": "consumer_crash", "target": "a_consumer"}


def _scoped(scope: str, isolation: str) -> Any:
    return _pipeline(
        [SCOPE_CRASH],
        workload__processing_ms=0.3,
        scenario__duration_s=20.0,
        kafka__consumer__transactional_id_scope=scope,
        kafka__consumer__output_isolation_level=isolation,
        kafka__consumer__transaction_timeout_ms=10_000.0,
        kafka__broker__transaction_abort_timed_out_transaction_cleanup_interval_ms=1000.0,
    )


def _abort_ms(result: Any, reason: str) -> float:
    aborted = events(result, "transaction_aborted")
    times = aborted[aborted["detail"].str.contains(f'"reason": "{reason}"')]["t_ms"]
    assert len(times) == 1, aborted
    return float(times.iloc[0])


def test_per_consumer_ids_hold_back_the_last_stable_offset_until_the_timeout() -> None:
    per_consumer = _scoped("consumer", "read_committed")
    per_partition = _scoped("partition", "read_committed")
    for result in (per_consumer, per_partition):
        _no_duplicates_no_loss(result)
    # which output records the crash left in the open transaction: those a read_uncommitted
    # reader of the same run sees twice (same seed and processing; only the reader differs)
    seen = _scoped("consumer", "read_uncommitted").messages
    aborted_ids = seen[seen["deliveries"] > 1]["id"].to_numpy()
    assert aborted_ids.size > 0
    timeout_ms = _abort_ms(per_consumer, "transaction_timeout")
    fenced_ms = _abort_ms(per_partition, "fenced_by_new_owner")
    assert fenced_ms < timeout_ms - 3000.0  # the new owner fenced it long before the timeout
    # their redone output is committed after the takeover, but read_committed sees it only
    # once the LSO moves past the hanging transaction: at its abort
    late = per_consumer.messages.set_index("id").loc[aborted_ids, "deliver_ms"]
    assert (late >= timeout_ms - 1e-3).all(), (late.min(), timeout_ms)
    early = per_partition.messages.set_index("id").loc[aborted_ids, "deliver_ms"]
    assert (early < timeout_ms).all(), (early.max(), timeout_ms)


@pytest.mark.parametrize("faults", [[CONSUMER_CRASH], [PAUSE]])
def test_per_consumer_ids_keep_the_output_exactly_once(faults: list[dict[str, Any]]) -> None:
    # the crash lands mid-poll; the paused zombie loses its partitions mid-poll, aborts its
    # transaction when it learns it (onPartitionsLost) and never commits the stale one
    result = _pipeline(faults, kafka__consumer__transactional_id_scope="consumer")
    _no_duplicates_no_loss(result)
    assert result.summary["model"]["transactions_aborted"] >= 1


def test_per_consumer_ids_survive_a_broker_crash_then_a_consumer_crash() -> None:
    faults = [LEADER_CRASH, CONSUMER_CRASH]
    _no_duplicates_no_loss(_pipeline(faults, kafka__consumer__transactional_id_scope="consumer"))


def test_a_bad_isolation_level_is_rejected_with_its_field() -> None:
    with pytest.raises(ScenarioError, match="output_isolation_level"):
        run_kafka(scenario(kafka__consumer__output_isolation_level="read_everything"))
