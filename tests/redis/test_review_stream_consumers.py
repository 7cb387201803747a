"""Review regressions: stream consumers that are paused, and entries trimmed from the group
while a consumer still holds them (Redis model II).

Sizes: a few hundred XADD/s for 1-3 s; the counts are exact mechanisms (a paused consumer's
backlog, the entries of one batch), not statistics.
"""

from __future__ import annotations

from typing import Any

from redis_support import events_of, run_redis, spec

STREAM: dict[str, Any] = {"workload": "stream", "ops": {"xautoclaim_min_idle_ms": 1000}}


def _m(result: Any) -> dict[str, Any]:
    return result.summary["messages"]


def _pause(at_s: float, duration_s: float) -> dict[str, Any]:
    return {"at_s": at_s, "kind": "pause", "target": "a_consumer", "duration_s": duration_s}


def test_a_paused_stream_consumer_takes_its_batch_when_it_resumes_and_reads_on() -> None:
    # SIGSTOP: the XREADGROUP reply that reaches the stopped consumer waits in its socket; it
    # processes it when it runs again and goes on reading (it used to drop the batch and never
    # read again: every later entry stayed unread, in_flight)
    w = {"consumers": 1, "processing_ms": 0.1, "rate_per_s": 200.0}
    m = _m(run_redis(spec(redis=STREAM, workload=w, duration_s=3.0, faults=[_pause(0.75, 0.5)])))
    assert m["produced"] > 500
    assert m["delivered"] == m["produced"]
    assert m["lost"] == m["in_flight"] == 0
    # 0.5 s < min-idle-time 1 s: nobody claimed its entries meanwhile, nothing twice
    assert m["duplicates"] == 0


def test_a_consumer_that_claims_the_entry_it_is_about_to_process_counts_the_claim_as_the_duplicate() -> (
    None
):
    # min-idle-time 50 ms < the 0.5 s pause: once it runs again the consumer processes the batch
    # that waited in its socket, and its own XAUTOCLAIM hands it those idle entries again. The
    # first processing is the delivery, the claimed copy the duplicate (with no server restart,
    # nothing is "redelivered_after_restart")
    redis = {"workload": "stream", "ops": {"xautoclaim_min_idle_ms": 50, "xautoclaim_every_ms": 50}}
    w = {"consumers": 1, "processing_ms": 0.1, "rate_per_s": 200.0}
    m = _m(run_redis(spec(redis=redis, workload=w, duration_s=3.0, faults=[_pause(0.75, 0.5)])))
    assert m["delivered"] == m["produced"] > 500
    assert m["lost"] == m["in_flight"] == 0
    assert set(m["duplicates_by_cause"]) <= {"claimed_pending_entry"}


def test_a_consumer_paused_while_its_server_restarts_reads_again_when_it_resumes() -> None:
    # the restart resets the connection of the blocked XREADGROUP; the stopped consumer sees the
    # reset when it runs again and reconnects (AOF always: nothing acknowledged is lost)
    redis = {**STREAM, "appendonly": True, "appendfsync": "always"}
    w = {"consumers": 1, "processing_ms": 0.1, "rate_per_s": 200.0}
    faults = [
        _pause(0.5, 1.0),
        {"at_s": 0.8, "kind": "crash", "target": "redis", "duration_s": 0.2},
    ]
    m = _m(run_redis(spec(redis=redis, workload=w, duration_s=2.5, faults=faults)))
    assert m["in_flight"] == m["lost"] == 0
    assert m["delivered"] == m["acked"] > 300


# three consumers, 3 ms an entry, batches of 50 (150 ms each): XAUTOCLAIM (every 50 ms, min idle
# 50 ms) claims entries their reader is still processing, and MAXLEN ~ 100 at 1000 XADD/s trims
# them from the stream meanwhile, so XAUTOCLAIM reports them deleted and drops them from the PEL
TRIMMED: dict[str, Any] = {
    "workload": "stream",
    "appendonly": True,
    "appendfsync": "always",
    "ops": {
        "stream_maxlen": 100,
        "xreadgroup_count": 50,
        "xautoclaim_min_idle_ms": 50.0,
        "xautoclaim_every_ms": 50.0,
    },
}
BUSY = {"consumers": 3, "processing_ms": 3.0, "rate_per_s": 1000.0, "producers": 3, "keys": 1}


def test_an_entry_xautoclaim_reports_deleted_is_still_processed_by_the_consumer_holding_it() -> (
    None
):
    # the consumer that read the entry before the trim still has it and processes it: it is
    # delivered, never lost in between (it used to be counted lost, then delivered: resurrected)
    for seed in (1, 84):
        m = _m(run_redis(spec(redis=TRIMMED, workload=BUSY, duration_s=1.0, seed=seed)))
        assert m["anomalies"]["resurrected"] == 0
        assert m["in_flight"] == 0
        # the group falls behind (it processes claimed copies too): MAXLEN ~ drops unread nodes
        assert set(m["lost_by_cause"]) <= {"trimmed_before_read"}
        assert m["delivered"] + m["lost"] == m["produced"] > 900


def test_an_entry_processed_by_its_reader_and_by_a_claimer_is_a_claim_duplicate() -> None:
    # min-idle-time (50 ms) shorter than a batch (150 ms): XAUTOCLAIM hands entries to another
    # consumer while their reader is still on them. Whichever copy is processed second, the
    # duplicate is the claim's; with no restart and no failover none is "redelivered_after_*"
    for seed in (1, 84):
        m = _m(run_redis(spec(redis=TRIMMED, workload=BUSY, duration_s=1.0, seed=seed)))
        assert m["duplicates"] > 100
        assert set(m["duplicates_by_cause"]) == {"claimed_pending_entry"}


def test_an_entry_gone_from_the_group_is_lost_when_the_consumer_holding_it_dies() -> None:
    # nobody else can claim an entry trimmed from the stream and the PEL: the consumer holding it
    # dies, it is lost (trimmed_before_read), and none of the ids is lost then delivered
    faults = [{"at_s": 0.8, "kind": "crash", "target": "a_consumer", "duration_s": 0.5}]
    result = run_redis(spec(redis=TRIMMED, workload=BUSY, duration_s=1.0, faults=faults, seed=1))
    m = _m(result)
    assert len(events_of(result, "crash")) == 1
    assert m["lost_by_cause"].get("trimmed_before_read", 0) > 0
    assert set(m["lost_by_cause"]) == {"trimmed_before_read"}
    assert m["anomalies"]["resurrected"] == 0
    assert m["in_flight"] == 0
