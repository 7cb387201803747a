"""Helpers for the Redis behaviour tests: build a scenario, run it, check the fates add up."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np

from simulator import load_scenario, run
from simulator.results import Result

FATES = ("delivered", "lost", "skipped", "superseded", "failed", "indeterminate", "in_flight")


def spec(
    redis: dict[str, Any] | None = None,
    workload: dict[str, Any] | None = None,
    faults: list[dict[str, Any]] | None = None,
    duration_s: float = 3.0,
    seed: int = 1,
    **scenario: Any,
) -> dict[str, Any]:
    """A Redis scenario as plain data (small defaults: 2000 writes/s over 1000 keys)."""
    meta = {"duration_s": duration_s, "warmup_s": 0.2, "drain_s": 10.0, "seed": seed, **scenario}
    return {
        "scenario": meta,
        "system": {"kind": "redis"},
        "workload": {"rate_per_s": 2000.0, "producers": 4, "keys": 1000, **(workload or {})},
        "redis": copy.deepcopy(redis or {}),
        "faults": faults or [],
    }


def run_redis(data: dict[str, Any], seed: int | None = None) -> Result:
    """Run and check what every run must satisfy: fates partition the produced messages, and
    the server never acted late (a scheduling bug of the vectorized loop)."""
    result = run(load_scenario(data), seed=seed, check_invariants=True)
    m = result.summary["messages"]
    assert sum(m[f] for f in FATES) == m["produced"], m
    stats = loop_stats(result)
    assert stats["late_actions"] == 0, stats
    return result


def loop_stats(result: Result) -> dict[str, Any]:
    """The `event_loop_stats` event the model records at the final read."""
    events = result.events
    row = events[events["kind"] == "event_loop_stats"]
    assert len(row) == 1, "the Redis model records its loop statistics once"
    return json.loads(row["detail"].iloc[0])


def lag_then_power_loss(delay_ms: float, crash_s: float) -> list[dict[str, Any]]:
    """Replication lag = a network delay on the replicas' links from 0.5 s; the master then
    loses power at `crash_s` (the faults of the failover-loss tests)."""
    return [
        {
            "at_s": 0.5,
            "kind": "delay",
            "target": "replicas",
            "delay_ms": delay_ms,
            "duration_s": 1.4,
        },
        {"at_s": crash_s, "kind": "power_loss", "target": "primary", "duration_s": 10.0},
    ]


def run_cluster(data: dict[str, Any], seed: int | None = None) -> Result:
    """Run a Redis Cluster scenario and check what every cluster run must satisfy: the fates
    partition the produced messages, and a write answered with an error (CLUSTERDOWN,
    refused) never reached a dataset."""
    result = run(load_scenario(data), seed=seed, check_invariants=True)
    m = result.summary["messages"]
    assert sum(m[f] for f in FATES) == m["produced"] > 0, m
    assert m["anomalies"]["failed_but_delivered"] == m["anomalies"]["resurrected"] == 0, m
    return result


def events_of(result: Result, kind: str) -> list[tuple[float, dict[str, Any]]]:
    events = result.events
    rows = events[events["kind"] == kind]
    return [(float(t), json.loads(d)) for t, d in zip(rows["t_ms"], rows["detail"], strict=True)]


def messages(result: Result) -> Any:
    frame = result.messages
    assert frame is not None
    return frame


def lost_ids(result: Result, cause: str | None = None) -> np.ndarray:
    frame = messages(result)
    sel = frame["fate"] == "lost"
    if cause is not None:
        sel &= frame["cause"] == cause
    return frame.loc[sel, "id"].to_numpy()
