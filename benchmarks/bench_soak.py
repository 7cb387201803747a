"""Soak benchmark (issue 12, item 4): hours of simulated time under a seeded random nemesis.

The full-size variant of tests/soak: each system runs 2 simulated hours at 50 messages/s
(~360k messages, ~1400 faults drawn from crash, power loss, pause, partition, slow disk,
delay and restart) with every invariant checked at every gauge sample; `--quick` runs
10 simulated minutes. A broken invariant fails the benchmark (the harness records the error).
Memory: the harness reports peak RSS growth per message, which must stay flat (tens of bytes:
the history's ~25 bytes per message), not grow with the number of faults.

Run: `.venv/bin/python -m benchmarks soak_kafka soak_redis --reps 1`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from benchmarks.harness import benchmark

SIMULATED_S = 2 * 3600.0
SIMULATED_S_QUICK = 600.0
RATE_PER_S = 50.0
SEED = 20261126


def _soak_scenario(kind: str, duration_s: float) -> dict[str, Any]:
    # one definition of the soak scenario, shared with tests/soak (which is not a package)
    path = Path(__file__).resolve().parents[1] / "tests" / "soak" / "soak_support.py"
    spec = importlib.util.spec_from_file_location("soak_support", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.soak_scenario(kind, duration_s, RATE_PER_S))


def _soak(kind: str, quick: bool) -> dict[str, Any]:
    from simulator import load_scenario, run

    duration_s = SIMULATED_S_QUICK if quick else SIMULATED_S
    result = run(load_scenario(_soak_scenario(kind, duration_s)), seed=SEED, check_invariants=True)
    return {
        "messages": int(result.summary["messages"]["produced"]),
        "wall_s": float(result.manifest["wall_s"]),
        "check_s": result.manifest.get("check_s"),
    }


@benchmark("soak_kafka", description="Kafka: 2 simulated hours, random nemesis, invariants on")
def soak_kafka(*, quick: bool = False) -> dict[str, Any]:
    """One repetition of the Kafka soak."""
    return _soak("kafka", quick)


@benchmark("soak_redis", description="Redis: 2 simulated hours, random nemesis, invariants on")
def soak_redis(*, quick: bool = False) -> dict[str, Any]:
    """One repetition of the Redis soak."""
    return _soak("redis", quick)
