"""One seed, one result: the Kafka model draws only from named streams."""

from __future__ import annotations

import json

from kafka_helpers import run_kafka, scenario

FAULTS = [{"at_s": 1.0, "kind": "crash", "target": "leader", "duration_s": 2.0}]


def test_same_seed_gives_the_same_summary_and_events() -> None:
    data = scenario(FAULTS, scenario__duration_s=4.0, kafka__producer__acks="1")
    first, second = run_kafka(data, seed=7), run_kafka(data, seed=7)
    assert json.dumps(first.summary, sort_keys=True) == json.dumps(second.summary, sort_keys=True)
    assert first.events.equals(second.events)


def test_another_seed_gives_another_run() -> None:
    data = scenario(scenario__duration_s=2.0)
    assert run_kafka(data, seed=1).summary != run_kafka(data, seed=2).summary
