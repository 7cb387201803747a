"""Review regressions: the final drain waits for replies Redis has not sent yet.

A run ends once everything has settled (`drained`); a write or pop whose reply has not left
the server yet would end `in_flight`, neither delivered nor lost. Two places hold replies: an
iteration whose beforeSleep fsyncs (`appendfsync always`) while the disk is slow, and WAIT
waiting for replicas' acks. The counts are exact (every message has an outcome), not
statistics.
"""

from __future__ import annotations

from typing import Any

from redis_support import run_redis, spec


def _m(result: Any) -> dict[str, Any]:
    return result.summary["messages"]


def test_the_drain_waits_for_a_pop_whose_reply_waits_for_the_fsync() -> None:
    # the worker is down until the final phase, then pops the backlog: each BRPOP is a write,
    # so its iteration fsyncs before replying (always), on a disk made slow, while the replies
    # cross a 500 ms delay. The last pop ran and its fsync was under way when the server looked
    # idle: the item was in neither the list nor the worker (it ended in_flight)
    redis = {"workload": "list", "appendonly": True, "appendfsync": "always", "save": ""}
    w = {"consumers": 1, "processing_ms": 1.0, "rate_per_s": 200.0, "producers": 1}
    w |= {"arrival": "constant", "keys": 10}
    faults = [
        {"at_s": 0.0, "kind": "crash", "target": "a_worker"},
        {"at_s": 0.0, "kind": "delay", "target": "redis", "delay_ms": 500.0},
        {"at_s": 1.4656154035299116, "kind": "slow_disk", "target": "redis", "factor": 2.0},
    ]
    data = spec(redis=redis, workload=w, faults=faults, duration_s=3.0, warmup_s=0.5, seed=162)
    m = _m(run_redis(data))
    assert m["produced"] == 600
    assert m["delivered"] == m["produced"]
    assert m["in_flight"] == 0


def test_the_drain_waits_for_the_replies_wait_holds() -> None:
    # the only replica is paused from 0.54 s to the end of the measured phase: WAIT 1 holds each
    # write's reply until its timeout (1 s), so at the end the master still holds the last
    # second's replies (they ended in_flight); they come, short of replicas: indeterminate
    redis = {"workload": "kv", "replicas": 1, "client": {"wait_replicas": 1}}
    w = {"rate_per_s": 1000.0, "producers": 2, "keys": 100}
    faults = [{"at_s": 0.54, "kind": "pause", "target": "a_replica"}]
    data = spec(redis=redis, workload=w, faults=faults, duration_s=3.0, warmup_s=0.5, seed=1)
    m = _m(run_redis(data))
    assert m["in_flight"] == 0
    # about 1000 writes/s x the 2.46 s of pause were answered short of replicas
    assert m["indeterminate"] > 2000
