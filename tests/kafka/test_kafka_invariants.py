"""The committed-offset invariant: no false alarm after a restart, and a real breach is caught."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kafka_helpers import messages, run_kafka, scenario

from models.kafka.invariants import check_committed_offsets
from simulator.model import InvariantViolation


def test_a_commit_fetched_before_a_leaders_restart_is_no_violation() -> None:
    # broker2 leads partition 2 and is restarted at 6 s (the "a_follower" of partition 0 by
    # then): it comes back with the HW of its last checkpoint, below what the consumer had read
    # from it, and partition 2 stays offline (its only ISR member crashed at 4 s). The
    # consumer's next auto-commit (9 s) carries the position it fetched before the restart:
    # above every replica's HW now, below the HW it was fetched under. The old check (against
    # the replicas' HW now) raised here
    faults = [
        {"at_s": 3.0, "kind": "pause", "target": "a_follower"},
        {"at_s": 4.0, "kind": "crash", "target": "leader"},
        {"at_s": 6.0, "kind": "restart", "target": "a_follower"},
    ]
    result = run_kafka(scenario(faults, kafka__producer__acks="all"))  # checks invariants
    assert messages(result)["in_flight"] == 0


def test_a_commit_above_every_hw_a_leader_reached_is_reported() -> None:
    model = SimpleNamespace(
        group=SimpleNamespace(committed={0: (90, 0), 1: (120, 0)}),
        partitions=[SimpleNamespace(max_hw=100), SimpleNamespace(max_hw=100)],
        env=SimpleNamespace(now=5.0),
    )
    with pytest.raises(InvariantViolation) as raised:
        check_committed_offsets(model)
    assert raised.value.state == {"partition": 1, "committed_offset": 120, "highest_hw": 100}
