"""Review regressions: a pub/sub subscriber that is paused (SIGSTOP) reads nothing meanwhile.

What Redis publishes to it waits in its socket buffers, then in Redis's output buffer (which
`client-output-buffer-limit pubsub` bounds); it processes the backlog once it runs again. Sizes:
a few hundred to 2000 PUBLISH/s for a few seconds; counts are exact mechanisms (what was
published in a window), not statistics.
"""

from __future__ import annotations

from typing import Any

from redis_support import events_of, messages, run_redis, spec

PUBSUB: dict[str, Any] = {"workload": "pubsub"}
ONE = {"consumers": 1, "producers": 1, "processing_ms": 2.0, "rate_per_s": 400.0}


def _pause(at_s: float, duration_s: float) -> dict[str, Any]:
    return {"at_s": at_s, "kind": "pause", "target": "a_subscriber", "duration_s": duration_s}


def test_a_paused_subscriber_processes_nothing_until_it_runs_again() -> None:
    result = run_redis(spec(redis=PUBSUB, workload=ONE, duration_s=3.0, faults=[_pause(1.0, 1.0)]))
    m = result.summary["messages"]
    assert m["delivered"] == m["produced"] > 1000
    done = messages(result)["deliver_ms"]
    # nothing is processed while it is stopped (it used to go on processing: ~370 copies)
    assert int(((done > 1000.5) & (done < 2000.0)).sum()) == 0
    # the ~400 copies published during the pause are processed after it, 2 ms each
    assert int(((done >= 2000.0) & (done < 2900.0)).sum()) >= 400


def test_a_paused_subscriber_resubscribes_after_a_server_restart_it_slept_through() -> None:
    # the restart resets its connection; it sees the reset when it runs again (2.0 s) and
    # resubscribes: what was published between the restart (1.5 s) and then is lost. It used to
    # stay unsubscribed for the rest of the run (every later message lost)
    w = {**ONE, "processing_ms": 0.1, "rate_per_s": 200.0}
    faults = [
        _pause(1.0, 1.0),
        {"at_s": 1.2, "kind": "crash", "target": "redis", "duration_s": 0.3},
    ]
    result = run_redis(spec(redis=PUBSUB, workload=w, duration_s=4.0, faults=faults))
    m = result.summary["messages"]
    assert set(m["lost_by_cause"]) == {"pubsub_not_connected"}
    frame = messages(result)
    lost = frame[frame["fate"] == "lost"]
    assert lost["intended_ms"].min() >= 1500.0 - 5.0
    assert lost["intended_ms"].max() <= 2000.0 + 300.0
    # the copies published before the crash waited in its socket and are processed on resume
    assert m["delivered"] + m["lost"] + m["failed"] == m["produced"]


def test_a_subscriber_paused_past_its_output_buffer_limit_is_disconnected() -> None:
    # 2000 PUBLISH/s of ~140 bytes pile up while it is stopped: 256 KB fill its socket buffers,
    # then Redis's output buffer passes the 100 KB hard limit and Redis closes the connection
    redis = {**PUBSUB, "client_output_buffer_limit_pubsub": "100kb 0 0"}
    w = {**ONE, "processing_ms": 0.05, "rate_per_s": 2000.0}
    result = run_redis(spec(redis=redis, workload=w, duration_s=3.0, faults=[_pause(1.0, 1.5)]))
    m = result.summary["messages"]
    killed = events_of(result, "client_killed")
    assert len(killed) >= 1 and 1000.0 < killed[0][0] < 2500.0
    assert m["lost_by_cause"].get("pubsub_output_buffer_limit", 0) > 0
