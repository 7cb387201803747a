"""Producer retries: duplicates and reordering without idempotence, none with it."""

from __future__ import annotations

import pytest
from kafka_helpers import messages, run_kafka, scenario

from models.kafka.producer import Producer
from simulator import load_scenario, run

# A 3 s GC pause of the leader (shorter than the 9 s session: nobody is fenced) with
# request.timeout.ms = 1 s: the producer gives up on its requests and sends them again to the
# same, still paused, leader; when the leader resumes it handles the originals and the retries.
PAUSE = [{"at_s": 2.0, "kind": "pause", "target": "leader", "duration_s": 3.0}]


def _paused_leader(idempotent: bool, **settings: object) -> dict:
    data = scenario(
        PAUSE,
        scenario__duration_s=8.0,
        kafka__broker__broker_session_timeout_ms=9000.0,
        kafka__producer__enable_idempotence=idempotent,
        kafka__producer__request_timeout_ms=1000.0,
        **settings,
    )
    return messages(run_kafka(data))


def test_retries_without_idempotence_create_duplicates() -> None:
    m = _paused_leader(idempotent=False)
    assert m["duplicates"] > 0
    assert m["duplicates_by_cause"] == {"producer_retry": m["duplicates"]}
    assert m["lost"] == 0


def test_idempotence_drops_retried_batches_the_leader_already_has() -> None:
    m = _paused_leader(idempotent=True)
    assert m["duplicates"] == 0
    assert m["lost"] == 0
    assert m["delivered"] == m["produced"]


def test_retries_without_idempotence_can_reorder_records_within_a_partition() -> None:
    # acks=1 turns idempotence off (Kafka's default resolution); after the leader crash the
    # failed batches come back ahead of or behind batches that succeeded meanwhile
    crash = [{"at_s": 2.0, "kind": "crash", "target": "leader", "duration_s": 4.0}]
    reordered = messages(run_kafka(scenario(crash, kafka__producer__acks="1")))
    ordered = messages(run_kafka(scenario(crash, kafka__producer__acks="all")))
    assert reordered["out_of_order"] > 0
    assert ordered["out_of_order"] == 0


def test_records_of_a_partition_without_a_leader_fail_after_delivery_timeout() -> None:
    # every broker down: nothing can be written; records sent before the brokers return fail
    # once delivery.timeout.ms has passed, and none is reported as lost
    down = [{"at_s": 2.0, "kind": "crash", "target": "all_servers", "duration_s": 6.0}]
    m = messages(
        run_kafka(
            scenario(
                down,
                kafka__producer__request_timeout_ms=1000.0,
                kafka__producer__delivery_timeout_ms=2000.0,
            )
        )
    )
    assert m["failed"] + m["indeterminate"] > 0
    assert m["lost"] == 0


def test_a_crashed_producer_fails_what_it_had_not_sent_and_loses_nothing_acknowledged() -> None:
    crash = [{"at_s": 2.0, "kind": "crash", "target": "producers", "duration_s": 1.0}]
    m = messages(run_kafka(scenario(crash)))
    assert m["failed"] > 0  # records the application produced while it was down
    assert m["lost"] == 0


def test_a_zero_retry_backoff_retries_at_network_speed_and_delivers_after_the_outage() -> None:
    # retry.backoff.ms = 0 is allowed by Kafka: every NOT_ENOUGH_REPLICAS answer is retried at
    # once. Over a one-second outage that is thousands of attempts per batch (retries defaults
    # to MAX_INT), which once overflowed the exponential backoff (2**attempts as a float).
    data = {
        "scenario": {"duration_s": 2.0, "warmup_s": 0.5, "drain_s": 30.0},
        "system": {"kind": "kafka"},
        "workload": {"rate_per_s": 50.0, "producers": 1, "consumers": 1},
        "kafka": {
            "brokers": 3,
            "broker": {"replica_lag_time_max_ms": 200.0},
            "topic": {"partitions": 1, "replication_factor": 3, "min_insync_replicas": 2},
            "producer": {"retry_backoff_ms": 0.0, "retry_backoff_max_ms": 0.0},
        },
        "faults": [{"at_s": 0.5, "kind": "crash", "target": "followers", "duration_s": 1.0}],
    }
    result = run(load_scenario(data), seed=1, check_invariants=True)
    m = result.summary["messages"]
    assert m["acked"] == m["produced"] == m["delivered"] and m["lost"] == 0, m


def test_the_senders_cached_ready_times_are_what_a_fresh_computation_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the sender drains only partitions whose cached ready time is finite and keeps the ready
    # time of those it did not drain: every cached value must be the current one, through
    # retries, backoffs, a crash of the leader and metadata changes
    checked = [0]
    step = Producer.step

    def checking_step(self: Producer) -> None:
        for p, cached in enumerate(self._ready_cache):
            if cached is not None:
                assert cached == self._compute_ready(p), (p, cached)
                checked[0] += 1
        step(self)

    monkeypatch.setattr(Producer, "step", checking_step)
    faults = [{"at_s": 2.0, "kind": "crash", "target": "leader", "duration_s": 3.0}]
    data = scenario(faults, scenario__duration_s=6.0, kafka__producer__request_timeout_ms=1000.0)
    assert messages(run_kafka(data))["produced"] > 0
    assert checked[0] > 1000


def test_a_frozen_producer_sends_what_it_missed_when_it_runs_again() -> None:
    """A SIGSTOPped producing application calls send() when it thaws: the records it should have
    sent meanwhile go out then, late, and none fails; a pause that lasts to the end of the
    measured phase ends with the final phase and its records are sent then. (Records sent during
    a pause failed, and a producer frozen at the end never sent what it held.)"""
    timed = run_kafka(
        scenario([{"at_s": 1.0, "kind": "pause", "target": "producers", "duration_s": 0.2}])
    )
    m = messages(timed)
    assert m["failed"] == 0 and m["delivered"] == m["produced"]
    frame = timed.messages
    during = frame[(frame["intended_ms"] > 1050.0) & (frame["intended_ms"] < 1150.0)]
    # acknowledged after the thaw at 1.2 s at the earliest
    assert bool((during["ack_ms"] >= 1200.0).all())
    held = run_kafka(scenario([{"at_s": 9.5, "kind": "pause", "target": "producers"}]))
    m = messages(held)
    assert m["failed"] == 0 and m["in_flight"] == 0 and m["delivered"] == m["produced"]
