"""Kafka model throughput: the issue-5 benchmark (12M messages), ratio to bare SimPy.

3 brokers, 12 partitions, replication factor 3, acks=all, linger.ms 5, 4 producers, 100-byte
values, 12 consumers, 200k messages/s for 60 simulated seconds (12M messages), checker
included. `--quick` runs 20k messages/s for 10 s (200k messages) as a smoke test.

`kafka_12m` runs as a user's scenario does: without faults it is planned (the steady-state
engine, docs/kafka.md "Two engines"); the benchmark fails if the run fell back. `kafka_12m_events`
runs the same scenario with `kafka.engine = "events"`: the event engine every run with faults
uses.

    .venv/bin/python -m benchmarks kafka_12m kafka_12m_events --reps 5
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.harness import benchmark

_prepared: dict[tuple[bool, str], Any] = {}


def spec_data(quick: bool = False, engine: str = "auto") -> dict[str, Any]:
    """The benchmark scenario as plain data (also used by tests and notebooks)."""
    rate, duration = (20_000.0, 10.0) if quick else (200_000.0, 60.0)
    return {
        "scenario": {"name": "kafka_12m", "duration_s": duration, "warmup_s": 1.0, "drain_s": 30.0},
        "system": {"kind": "kafka"},
        "workload": {
            "rate_per_s": rate,
            "producers": 4,
            "consumers": 12,
            "value_bytes": 100,
            "keys": 100_000,
        },
        "kafka": {
            "brokers": 3,
            "topic": {"partitions": 12, "replication_factor": 3, "min_insync_replicas": 2},
            "producer": {"acks": "all", "linger_ms": 5.0},
            "engine": engine,
        },
    }


def _setup(*, quick: bool = False, engine: str = "auto") -> None:
    from simulator import load_scenario

    _prepared[quick, engine] = load_scenario(spec_data(quick, engine))


def _setup_events(*, quick: bool = False) -> None:
    _setup(quick=quick, engine="events")


def _once(quick: bool, engine: str, expect: str | None) -> dict[str, Any]:
    """One repetition: the run's own wall time (simulation + checker), as the harness expects."""
    from simulator import run

    if (quick, engine) not in _prepared:
        _setup(quick=quick, engine=engine)
    start = time.perf_counter()
    cpu_start = time.process_time()
    result = run(_prepared[quick, engine], seed=1)
    elapsed = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    m = result.summary["messages"]
    if m["delivered"] != m["produced"]:
        raise RuntimeError(f"benchmark run lost or stranded messages: {m}")
    if result.manifest.get("engine") != expect:
        why = result.manifest.get("engine_fallback")
        raise RuntimeError(f"the run used engine {result.manifest.get('engine')} ({why})")
    return {
        "messages": int(m["produced"]),
        "wall_s": float(result.manifest.get("wall_s") or elapsed),
        "check_s": result.manifest.get("check_s"),
        "sim_s": result.manifest.get("sim_s"),
        # this process's CPU time: on a shared machine wall time also counts other processes
        "cpu_s": cpu_s,
    }


@benchmark(
    "kafka_12m",
    setup=_setup,
    description="Kafka 3 brokers x 12 partitions, RF 3, acks=all: 12M messages (planned)",
)
def kafka_12m(*, quick: bool = False) -> dict[str, Any]:
    return _once(quick, "auto", "planned")


@benchmark(
    "kafka_12m_events",
    setup=_setup_events,
    description="kafka_12m through the event engine (the one runs with faults use)",
)
def kafka_12m_events(*, quick: bool = False) -> dict[str, Any]:
    return _once(quick, "events", None)


def run_benchmark(quick: bool = False) -> dict[str, Any]:
    """Plain entry point (without the harness): one repetition's facts."""
    _setup(quick=quick)
    return kafka_12m(quick=quick)
