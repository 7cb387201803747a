"""A page's URL reads back into the same run or comparison (so a shared link reproduces it)."""

from __future__ import annotations

import pytest
from links import CompareRequest, RunRequest, toml_value

from simulator.scenario import ScenarioError, parse_value

CRASH = {"at_s": 3.0, "kind": "crash", "target": "primary", "duration_s": 1.0}


def test_a_run_request_survives_the_round_trip_through_its_query() -> None:
    request = RunRequest.build(
        "queue_mm1",
        {"scenario.seed": 7, "workload.rate_per_s": 900.0, "queue.service": "deterministic"},
        faults=[CRASH],
    )
    assert request.seed == 7
    query = request.to_query()
    assert query["set"] == ["queue.service=deterministic", "workload.rate_per_s=900"]
    assert RunRequest.from_query(query) == request
    spec = request.spec()
    assert spec.scenario.seed == 7 and spec.workload.rate_per_s == 900.0
    assert spec.faults[0].model_dump(exclude_defaults=True) == CRASH


def test_no_faults_at_all_is_not_the_scenarios_own_faults() -> None:
    removed = RunRequest.build("queue_mm1", faults=[])
    assert removed.to_query()["fault"] == ["none"]
    assert RunRequest.from_query(removed.to_query()) == removed
    assert "fault" not in RunRequest.build("queue_mm1").to_query()


def test_a_malformed_query_names_every_problem() -> None:
    with pytest.raises(ScenarioError) as caught:
        RunRequest.from_query(
            {"scenario": ["nope"], "seed": ["x"], "set": ["novalue"], "fault": ["[1, 2]"]}
        )
    text = "\n".join(caught.value.problems)
    for part in ("no built-in scenario 'nope'", "seed: 'x'", "set: 'novalue'", "fault: '[1, 2]'"):
        assert part in text
    assert RunRequest.from_query({}) is None


def test_toml_values_read_back_with_the_scenario_parser() -> None:
    value = {"label": 'a "quoted" name', "set": ["k=v", "x=1"], "n": 3, "f": 0.5, "b": True}
    assert parse_value(toml_value(value)) == value


def test_a_composed_comparison_survives_the_round_trip_and_validates() -> None:
    request = CompareRequest(
        "queue_mm1",
        2,
        (("slow", ("queue.service_ms=1.5",), "slower service"), ("fast", (), "")),
        ("slow.latency_ms.ack.p99 > fast.latency_ms.ack.p99",),
    )
    assert CompareRequest.from_query(request.to_query()) == request
    spec = request.spec()
    assert [v.label for v in spec.compare.variants] == ["slow", "fast"]
    assert spec.compare.expect[0].check == request.claims[0]
    assert spec.scenario.seed == 2
