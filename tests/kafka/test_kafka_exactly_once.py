"""Exactly-once consume-transform-produce (simplified: one transaction per poll).

A record is delivered when the transaction of its poll commits (its output and the consumer's
offsets together, seen downstream with read_committed); a crash aborts the open transaction, so
the next owner processes those records again but only one processing is ever visible. The runs
are those of test_kafka_groups: consumer0 saturated, crashing at 7 s in the middle of a poll.
"""

from __future__ import annotations

from typing import Any

import pytest
from kafka_helpers import messages, run_kafka, scenario

from simulator.scenario import ScenarioError

CONSUMER_CRASH = {"at_s": 7.0, "kind": "consumer_crash", "target": "a_consumer"}
LEADER_CRASH = {"at_s": 5.0, "kind": "crash", "target": "leader", "duration_s": 4.0}


def _pipeline(faults: list[dict[str, Any]], exactly_once: bool) -> Any:
    return messages(
        run_kafka(
            scenario(
                faults,
                workload__consumers=2,
                workload__processing_ms=0.8,
                scenario__drain_s=60.0,
                kafka__consumer__enable_auto_commit=False,
                kafka__consumer__exactly_once=exactly_once,
            )
        )
    )


@pytest.mark.parametrize(
    "faults", [[CONSUMER_CRASH], [LEADER_CRASH], [LEADER_CRASH, CONSUMER_CRASH]]
)
def test_transactional_pipeline_has_no_duplicates_and_no_loss(faults: list[dict[str, Any]]) -> None:
    m = _pipeline(faults, exactly_once=True)
    assert m["duplicates"] == 0, m
    assert m["lost"] == 0 and m["skipped"] == 0 and m["in_flight"] == 0, m
    assert m["delivered"] == m["produced"] - m["failed"] - m["indeterminate"]


def test_same_pipeline_without_transactions_has_duplicates_after_a_consumer_crash() -> None:
    m = _pipeline([CONSUMER_CRASH], exactly_once=False)
    assert m["duplicates_by_cause"].get("redelivered_after_consumer_crash", 0) > 0
    assert m["lost"] == 0


def test_exactly_once_with_auto_commit_is_a_configuration_error() -> None:
    with pytest.raises(ScenarioError, match="exactly_once"):
        run_kafka(scenario(kafka__consumer__exactly_once=True))
