"""The planning engine (models/kafka/steady.py) against the event engine.

A run without faults is planned in spans; the same scenario with `kafka.engine = "events"` is
simulated event by event. Both take the very same messages from the workload, so every count
must be equal, and the latencies may differ only by the network jitter, drawn in another order.
The jitter is lognormal with sigma 0.2 on a 0.1 ms one-way delay (sd ~0.02 ms per hop); a
produce -> ack path crosses 4-6 hops and its latency is dominated by linger.ms and the fetch
loops, which depend on the identical arrival times. Percentiles of thousands of messages move by
a few hundredths of a millisecond between two draws of that jitter; the tolerance (0.1 ms, or
5% of the value) is several times that, and far below the effects a missing mechanism would
have (a follower round trip is ~0.2 ms, a linger 5 ms).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from kafka_helpers import scenario as helpers_scenario

from simulator import load_scenario, run
from simulator.results import Result

BASE: dict[str, Any] = {
    "system": {"kind": "kafka"},
    "scenario": {"duration_s": 4.0, "warmup_s": 1.0, "drain_s": 20.0},
    "workload": {"rate_per_s": 5000.0, "producers": 2, "consumers": 3},
    "kafka": {"topic": {"partitions": 3, "replication_factor": 3, "min_insync_replicas": 2}},
}


def scenario(**settings: Any) -> dict[str, Any]:
    return helpers_scenario(base=BASE, **settings)


def both(data: dict[str, Any], seed: int = 1) -> tuple[Result, Result]:
    planned = run(load_scenario(data), seed=seed, check_invariants=True)
    events = copy.deepcopy(data)
    events["kafka"]["engine"] = "events"
    simulated = run(load_scenario(events), seed=seed, check_invariants=True)
    return planned, simulated


def close(a: float, b: float) -> bool:
    return abs(a - b) <= max(0.1, 0.05 * abs(b))


CASES = {
    "defaults (acks=all, linger 5 ms)": {},
    "acks=1": {"kafka__producer__acks": "1"},
    "acks=0": {"kafka__producer__acks": "0"},
    "linger 0 (one request per record)": {
        "kafka__producer__linger_ms": 0.0,
        "workload__rate_per_s": 400.0,
    },
    "linger 20 ms": {"kafka__producer__linger_ms": 20.0},
    "one broker, no replication": {
        "kafka__brokers": 1,
        "kafka__topic": {"partitions": 2, "replication_factor": 1, "min_insync_replicas": 1},
    },
    "5 brokers, 7 partitions, RF 2": {
        "kafka__brokers": 5,
        "kafka__topic": {"partitions": 7, "replication_factor": 2, "min_insync_replicas": 1},
        "workload__consumers": 2,
    },
    "no consumers": {"workload__consumers": 0},
    "more consumers than partitions": {"workload__consumers": 5},
    "processing time, one partition each": {
        "workload__processing_ms": 0.1,
        "workload__rate_per_s": 3000.0,
    },
    "constant arrivals, varying sizes": {
        "workload__arrival": "constant",
        "workload__value_bytes_distribution": "exponential",
        "workload__value_bytes": 300,
    },
    "a slow trickle (fetches expire)": {"workload__rate_per_s": 3.0},
}


@pytest.mark.parametrize("settings", CASES.values(), ids=list(CASES))
def test_the_planner_agrees_with_the_event_engine(settings: dict[str, Any]) -> None:
    planned, simulated = both(scenario(**settings))
    assert planned.manifest.get("engine") == "planned", planned.manifest.get("engine_fallback")
    assert simulated.manifest.get("engine") is None
    p, s = planned.summary["messages"], simulated.summary["messages"]
    # the same messages, every one with the same fate
    assert p == s
    assert p["acked"] == p["produced"]  # no fault: every message acknowledged, any acks
    if settings.get("workload__consumers") != 0:
        assert p["delivered"] == p["produced"]
    lat_p, lat_s = planned.summary["latency_ms"], simulated.summary["latency_ms"]
    for kind in ("ack", "end_to_end"):
        for q in ("p50", "p99"):
            a, b = lat_p[kind][q], lat_s[kind][q]
            if b is None or (isinstance(b, float) and np.isnan(b)):
                continue
            assert close(a, b), (kind, q, a, b)
    assert planned.summary["model"] == simulated.summary["model"]
    assert planned.events["kind"].tolist() == simulated.events["kind"].tolist()
    # the gauges tell the same story: request and byte rates, the log end of partition 0
    ts_p, ts_s = planned.timeseries, simulated.timeseries
    for column in ("produce_requests_per_s", "bytes_in_per_s"):
        mean_p, mean_s = float(ts_p[column].mean()), float(ts_s[column].mean())
        assert abs(mean_p - mean_s) <= 0.02 * mean_s + 1.0, (column, mean_p, mean_s)
    assert float(ts_p["leo_p0"].iloc[-1]) == float(ts_s["leo_p0"].iloc[-1])
    assert float(ts_p["hw_p0"].iloc[-1]) == float(ts_s["hw_p0"].iloc[-1])


def test_per_message_latencies_match_in_distribution() -> None:
    """Message by message the engines differ only by jitter: the median absolute difference of
    each message's end-to-end latency is a few hundredths of a millisecond."""
    planned, simulated = both(scenario())
    a = planned.messages["deliver_ms"].to_numpy() - planned.messages["intended_ms"].to_numpy()
    b = simulated.messages["deliver_ms"].to_numpy() - simulated.messages["intended_ms"].to_numpy()
    assert float(np.median(np.abs(a - b))) < 0.05
    assert float(np.mean(a - b)) == pytest.approx(0.0, abs=0.05)


def test_same_seed_same_result() -> None:
    data = scenario()
    one = run(load_scenario(data), seed=3)
    two = run(load_scenario(data), seed=3)
    assert one.manifest["engine"] == "planned"
    assert one.messages.equals(two.messages)
    assert one.timeseries.equals(two.timeseries)


FALLBACKS = {
    "batch.size": {"kafka__producer__batch_size": 2000, "kafka__producer__linger_ms": 50.0},
    "thread": {"kafka__broker__request_cpu_ms": 2.0, "kafka__producer__linger_ms": 0.0},
    "buffer.memory": {"kafka__producer__buffer_memory": 10_000},
    "max.in.flight": {
        "kafka__producer__max_in_flight_requests_per_connection": 1,
        "kafka__producer__linger_ms": 0.0,
    },
}


@pytest.mark.parametrize("what", list(FALLBACKS))
def test_leaving_the_steady_state_falls_back_to_the_event_engine(what: str) -> None:
    """A run the planner cannot plan is simulated event by event, with exactly the result of
    `engine = "events"`, and the manifest says why."""
    data = scenario(**FALLBACKS[what])
    result = run(load_scenario(data), seed=1)
    assert what in result.manifest["engine_fallback"]
    assert result.manifest.get("engine") is None
    events = copy.deepcopy(data)
    events["kafka"]["engine"] = "events"
    expected = run(load_scenario(events), seed=1)
    assert result.messages.equals(expected.messages)
    assert result.summary == expected.summary


def test_runs_with_faults_use_the_event_engine() -> None:
    data = scenario()
    data["faults"] = [{"at_s": 1.0, "kind": "crash", "target": "leader"}]
    result = run(load_scenario(data), seed=1)
    assert result.manifest.get("engine") is None
    assert "engine_fallback" not in result.manifest
