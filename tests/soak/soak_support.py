"""The soak scenario shared by tests/soak (CI size) and benchmarks/bench_soak.py (full size)."""

from __future__ import annotations

from typing import Any

# Every fault kind the nemesis draws, against targets that exist in the default configurations
# (roles move with elections and failovers: `leader`, `a_follower`, `primary`).
NEMESIS: dict[str, dict[str, Any]] = {
    "kafka": {
        "kinds": ["crash", "power_loss", "pause", "partition", "slow_disk", "delay", "restart"],
        "targets": ["leader", "a_follower", "broker1", "controller", "a_consumer"],
    },
    "redis": {
        "kinds": ["crash", "power_loss", "pause", "partition", "slow_disk", "delay", "restart"],
        "targets": ["redis", "primary", "clients", "a_consumer"],
    },
}
REDIS_SECTION = {"appendonly": True, "appendfsync": "everysec", "save": "5 1000"}
KAFKA_SECTION = {"topic": {"partitions": 3, "replication_factor": 3, "min_insync_replicas": 2}}


def soak_scenario(kind: str, duration_s: float, rate_per_s: float) -> dict[str, Any]:
    """A seeded random nemesis (a fault every ~5 s, lasting ~2 s) against one system."""
    doc: dict[str, Any] = {
        "scenario": {
            "name": f"soak_{kind}",
            "duration_s": duration_s,
            "warmup_s": 1.0,
            "drain_s": 30.0,
        },
        "system": {"kind": kind},
        "workload": {"rate_per_s": rate_per_s, "producers": 2, "consumers": 2, "keys": 1000},
        "nemesis": {
            "enabled": True,
            "mean_interval_s": 5.0,
            "mean_duration_s": 2.0,
            **NEMESIS[kind],
        },
    }
    doc[kind] = REDIS_SECTION if kind == "redis" else KAFKA_SECTION
    return doc
