"""Small Kafka scenarios for the behaviour tests, and the checks every run must pass.

Runs are kept short (a few simulated seconds, hundreds to thousands of messages per second):
the Kafka timeouts that drive the behaviour are shortened where a test needs an election
(`broker.session.timeout.ms` 3 s instead of 9 s), which changes when things happen, not what.
Likewise the group's `session.timeout.ms` is 6 s (the broker's `group.min.session.timeout.ms`)
instead of 45 s, so a crashed consumer's partitions move within the drain.
"""

from __future__ import annotations

import copy
from typing import Any

from simulator import load_scenario, run
from simulator.results import Result

FATES = ("delivered", "lost", "skipped", "superseded", "failed", "indeterminate", "in_flight")

BASE: dict[str, Any] = {
    "system": {"kind": "kafka"},
    "scenario": {"duration_s": 10.0, "warmup_s": 1.0, "drain_s": 30.0},
    "workload": {"rate_per_s": 2000.0, "producers": 2, "consumers": 3},
    "kafka": {
        "topic": {"partitions": 3, "replication_factor": 3, "min_insync_replicas": 2},
        "broker": {"broker_session_timeout_ms": 3000.0, "broker_heartbeat_interval_ms": 500.0},
        "consumer": {"session_timeout_ms": 6000.0, "heartbeat_interval_ms": 2000.0},
    },
}


def scenario(
    faults: list[dict[str, Any]] | None = None, base: dict[str, Any] = BASE, **settings: Any
) -> dict[str, Any]:
    """`base` (BASE) with `section__key=value` settings (double underscores for dots) and
    faults."""
    data = copy.deepcopy(base)
    for dotted, value in settings.items():
        node = data
        parts = dotted.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    data["faults"] = faults or []
    return data


def run_kafka(data: dict[str, Any], seed: int = 1) -> Result:
    """Run with invariant checks; every produced message must have exactly one fate."""
    result = run(load_scenario(data), seed=seed, check_invariants=True)
    m = result.summary["messages"]
    assert sum(m[f] for f in FATES) == m["produced"], m
    assert m["produced"] > 0
    return result


def messages(result: Result) -> dict[str, Any]:
    return result.summary["messages"]


def events(result: Result, kind: str) -> Any:
    frame = result.events
    return frame[frame["kind"] == kind]
