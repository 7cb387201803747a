"""Redis model benchmarks (issue "Redis model I", performance section).

`redis_kv_aof_everysec`: 50k SET/s for 120 simulated seconds from 50 producer connections with
`appendonly yes` / `appendfsync everysec` (6M commands, checker included). The target is a ratio
>= 1.0: at least as many simulated commands per wall second as bare SimPy executes
`env.timeout` events, and at most 64 bytes of peak RSS growth per message.

Run: `.venv/bin/python -m benchmarks redis_kv_aof_everysec --reps 5` (or `make bench`).
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import benchmark, prepare_scenario, run_scenario

SCENARIO: dict[str, Any] = {
    "scenario": {
        "name": "bench_redis_kv_aof_everysec",
        "duration_s": 120.0,
        "warmup_s": 0.1,
        "drain_s": 5.0,
        "seed": 1,
        "ci_set": ["scenario.duration_s=12"],
    },
    "system": {"kind": "redis"},
    "workload": {"rate_per_s": 50_000.0, "producers": 50, "keys": 100_000, "value_bytes": 100},
    "redis": {"appendonly": True, "appendfsync": "everysec"},
}


def _setup(*, quick: bool = False) -> None:
    prepare_scenario(SCENARIO, None, quick=quick)  # type: ignore[arg-type]


@benchmark(
    "redis_kv_aof_everysec",
    setup=_setup,
    description="Redis: 50k SET/s x 120 s, AOF everysec, 50 producers (6M commands)",
)
def redis_kv_aof_everysec(*, quick: bool = False) -> dict[str, Any]:
    """One repetition (12 s, 600k commands, when quick)."""
    return run_scenario(SCENARIO, None, quick=quick)  # type: ignore[arg-type]


def run_benchmark(quick: bool = False) -> dict[str, Any]:
    """Plain entry point (without the harness): one repetition's facts."""
    _setup(quick=quick)
    return redis_kv_aof_everysec(quick=quick)
