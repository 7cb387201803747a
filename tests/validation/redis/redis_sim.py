"""The same validation cases through the simulator: scenario built from the real configuration.

`sim_redis_section` turns the redis.conf settings a real-Redis test starts its server with into
the `[redis]` section of a scenario (hyphens become underscores, yes/no become booleans), so the
two sides of a comparison cannot drift apart. Settings the model does not have (replication
details such as `repl-diskless-sync-delay`) are dropped by name, never silently by accident.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from redis_cases import LossOutcome

from simulator import run
from simulator.results import Result

# redis.conf settings of the real tests that the model has no field for (they only make the
# real test fast or possible), and base settings of every test server (redis_server.BASE_CONFIG)
NOT_MODELLED = frozenset(
    {
        "bind",
        "protected-mode",
        "daemonize",
        "enable-debug-command",
        "logfile",
        "loglevel",
        "repl-diskless-sync-delay",
        "replicaof",
    }
)


def sim_redis_section(real_config: Mapping[str, str | int]) -> dict[str, Any]:
    """redis.conf settings -> the scenario's `[redis]` keys (same names, underscores)."""
    section: dict[str, Any] = {}
    for key, value in real_config.items():
        if key in NOT_MODELLED:
            continue
        if value in ("yes", "no") and key != "appendfsync":
            section[key.replace("-", "_")] = value == "yes"
        else:
            section[key.replace("-", "_")] = value
    return section


def scenario(
    real_config: Mapping[str, str | int],
    *,
    duration_s: float,
    rate_per_s: float,
    faults: list[dict[str, Any]] | None = None,
    redis_extra: Mapping[str, Any] | None = None,
    drain_s: float = 5.0,
) -> dict[str, Any]:
    """A key-value scenario: SETs of 100 bytes to random keys among a million (the real tests
    write distinct keys; here a few writes hit a key twice, and the older one is superseded:
    `sim_crash_loss` leaves those out)."""
    redis_section = {"workload": "kv", **sim_redis_section(real_config), **(redis_extra or {})}
    return {
        "scenario": {
            "name": "validation",
            "duration_s": duration_s,
            "warmup_s": 0.0,
            "drain_s": drain_s,
        },
        "system": {"kind": "redis"},
        "workload": {
            "arrival": "poisson",
            "rate_per_s": rate_per_s,
            "value_bytes": 100,
            "keys": 1_000_000,
        },
        "redis": redis_section,
        "faults": faults or [],
    }


def simulate(spec: dict[str, Any], seed: int = 1) -> tuple[Result, pd.DataFrame]:
    result = run(spec, seed=seed)
    messages = result.messages
    assert messages is not None, "the run kept no per-message table"
    return result, messages


def event_times(result: Result, kind: str) -> list[float]:
    events = result.events
    return sorted(events.loc[events["kind"] == kind, "t_ms"].tolist())


def sim_crash_loss(
    real_config: Mapping[str, str | int],
    *,
    crash_at_s: float = 8.0,
    down_s: float = 0.5,
    rate_per_s: float = 200.0,
) -> LossOutcome:
    """A process crash (restart after `down_s`): the writes acknowledged before the crash, and
    which of them the final read no longer finds."""
    spec = scenario(
        real_config,
        duration_s=crash_at_s + 2.0,
        rate_per_s=rate_per_s,
        faults=[{"at_s": crash_at_s, "kind": "crash", "target": "primary", "duration_s": down_s}],
    )
    result, messages = simulate(spec)
    crash_ms = crash_at_s * 1000.0
    before = messages[
        (messages["status"] == "acked")
        & (messages["ack_ms"] < crash_ms)
        & (messages["fate"] != "superseded")
    ]
    lost = before[before["fate"] == "lost"]
    outcome = LossOutcome(
        acknowledged=[str(i) for i in before["id"]],
        lost=[str(i) for i in lost["id"]],
    )
    forks = [t for t in event_times(result, "fork") if t < crash_ms]
    saved = [t for t in event_times(result, "rdb_saved") if t < crash_ms]
    outcome.notes.update(
        causes=sorted(set(lost["cause"])),
        last_fork_ms=forks[-1] if saved else None,
        crash_ms=crash_ms,
        messages=before,
    )
    return outcome


def sim_head_of_line(
    sleep_ms: float = 500.0, start_ms: float = 1000.0, rate_per_s: float = 500.0
) -> pd.DataFrame:
    """Writes around one 500 ms command (EVAL of a slow script: like DEBUG SLEEP, it runs on
    the only thread); adds `latency_ms` from the intended send time."""
    spec = scenario(
        {"save": "", "appendonly": "no"},
        duration_s=(start_ms + sleep_ms) / 1000.0 + 0.5,
        rate_per_s=rate_per_s,
        redis_extra={
            "ops": {
                "slow_command": "EVAL",
                "slow_command_ms": sleep_ms,
                "slow_command_every_ms": start_ms,
            }
        },
        drain_s=1.0,
    )
    _, messages = simulate(spec)
    messages = messages[messages["status"] == "acked"].copy()
    messages["latency_ms"] = messages["ack_ms"] - messages["intended_ms"]
    return messages


def sim_ack_latency_ms(real_config: Mapping[str, str | int], rate_per_s: float = 500.0) -> float:
    """Median produce->ack latency of SETs under the given persistence settings."""
    spec = scenario(real_config, duration_s=5.0, rate_per_s=rate_per_s, drain_s=1.0)
    result, _ = simulate(spec)
    return float(result.summary["latency_ms"]["ack"]["p50"])


def sim_replication_failover_loss(
    *,
    wait_timeout_ms: float | None,
    cut_at_s: float = 2.0,
    kill_at_s: float = 2.8,
    rate_per_s: float = 100.0,
) -> LossOutcome:
    """The real replication case through the model: a primary, one replica, three sentinels.

    The real test freezes the replica and then fills the primary's output buffer so that every
    later write stays in the dying primary's memory. The model's network has no socket-buffer
    limit (a paused node receives everything on resume), so the same condition is made directly:
    the replica's link is cut at `cut_at_s` (the stream waits in the primary), the primary
    crashes at `kill_at_s` and the sentinels promote the replica, as the real test's
    REPLICAOF NO ONE does. Writes are labelled `before:ID` (sent before the cut) and
    `during:ID` (sent between the cut and the crash), like the real test's keys.
    """
    redis: dict[str, Any] = {
        "replicas": 1,
        "sentinel": {"count": 3, "quorum": 2, "down_after_milliseconds": 1000},
    }
    if wait_timeout_ms is not None:
        redis["client"] = {"wait_replicas": 1, "wait_timeout_ms": wait_timeout_ms}
    faults = [
        {
            "at_s": cut_at_s,
            "kind": "partition",
            "groups": [["replica1"], ["primary"]],
            "duration_s": 10.0,
        },
        {"at_s": kill_at_s, "kind": "crash", "target": "primary", "duration_s": 30.0},
    ]
    spec = scenario(
        {"save": "", "appendonly": "no"},
        duration_s=kill_at_s + 3.0,
        rate_per_s=rate_per_s,
        faults=faults,
        redis_extra=redis,
    )
    result, messages = simulate(spec)
    messages = messages[messages["fate"] != "superseded"]
    sent = messages["intended_ms"]
    phase = pd.Series("after", index=messages.index)
    phase[sent < kill_at_s * 1000.0] = "during"
    phase[sent < cut_at_s * 1000.0] = "before"
    messages = messages[phase != "after"]
    labels = phase[messages.index] + ":" + messages["id"].astype(str)
    acked = messages["status"] == "acked"
    outcome = LossOutcome(
        acknowledged=labels[acked].tolist(),
        indeterminate=labels[messages["status"] == "indeterminate"].tolist(),
        lost=labels[acked & (messages["fate"] == "lost")].tolist(),
    )
    failovers = event_times(result, "failover")
    outcome.notes.update(
        sent={p: int((phase == p).sum()) for p in ("before", "during")},
        failover_ms=failovers,
        causes=sorted(set(messages.loc[messages["fate"] == "lost", "cause"])),
    )
    return outcome
