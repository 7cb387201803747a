"""Review regressions: a BRPOP worker that is paused (SIGSTOP) keeps what it was handed.

Sizes: 200 LPUSH/s for 3 s and one worker; the counts are exact mechanisms (the one item a
paused worker holds), not statistics.
"""

from __future__ import annotations

from typing import Any

from redis_support import run_redis, spec

LIST: dict[str, Any] = {"workload": "list"}
ONE_WORKER = {"consumers": 1, "processing_ms": 0.1, "rate_per_s": 200.0}


def _m(result: Any) -> dict[str, Any]:
    return result.summary["messages"]


def _pause(at_s: float, duration_s: float) -> dict[str, Any]:
    return {"at_s": at_s, "kind": "pause", "target": "a_worker", "duration_s": duration_s}


def test_a_paused_worker_processes_the_item_it_was_handed_when_it_resumes_and_pops_again() -> None:
    # the BRPOP reply that reaches the stopped worker waits in its socket; it processes the item
    # when it runs again and blocks on BRPOP again (it used to count the item lost,
    # popped_not_processed, and never pop again: every later item stayed in the list, in_flight)
    m = _m(run_redis(spec(redis=LIST, workload=ONE_WORKER, faults=[_pause(1.0, 0.5)])))
    assert m["produced"] > 500
    assert m["delivered"] == m["produced"]
    assert m["lost"] == m["in_flight"] == m["duplicates"] == 0


def test_a_worker_paused_while_its_server_restarts_pops_again_when_it_resumes() -> None:
    # the restart resets the connection of the blocked BRPOP; the stopped worker sees the reset
    # when it runs again and reconnects (AOF always: nothing acknowledged is lost)
    redis = {**LIST, "appendonly": True, "appendfsync": "always"}
    faults = [
        _pause(0.5, 1.0),
        {"at_s": 0.8, "kind": "crash", "target": "redis", "duration_s": 0.2},
    ]
    m = _m(run_redis(spec(redis=redis, workload=ONE_WORKER, faults=faults)))
    assert m["produced"] > 500
    assert m["lost"] == m["in_flight"] == 0
    assert m["delivered"] + m["failed"] + m["indeterminate"] == m["produced"]


def test_a_worker_killed_while_paused_loses_only_the_item_it_was_handed() -> None:
    # the item waiting in the stopped worker's socket had left Redis: a crash loses it (one
    # item, popped_not_processed); the restarted worker pops the rest
    faults = [_pause(1.0, 1.0), {"at_s": 1.5, "kind": "crash", "target": "a_worker"}]
    m = _m(run_redis(spec(redis=LIST, workload=ONE_WORKER, faults=faults)))
    assert m["lost_by_cause"] == {"popped_not_processed": 1}
    assert m["delivered"] == m["produced"] - 1
    assert m["in_flight"] == 0
