"""Requests waiting in the sockets of a paused broker whose process then dies.

A paused process (a long GC, SIGSTOP) reads nothing: requests pile up in its sockets. When the
process then dies (kill -9, or a restart), the kernel closes those sockets: every sender sees its
connection reset at once and acks=0 records in them never reach a log. The senders do not wait
for their request timeouts, and nothing vanishes without a cause.
"""

from __future__ import annotations

from kafka_helpers import messages, run_kafka, scenario

PAUSE_LEADER = {"at_s": 3.0, "kind": "pause", "target": "leader"}


def test_acks0_records_in_a_paused_brokers_sockets_are_lost_when_it_crashes() -> None:
    crash = {"at_s": 5.0, "kind": "crash", "target": "leader"}
    result = run_kafka(scenario([PAUSE_LEADER, crash], kafka__producer__acks="0"))
    m = messages(result)
    # the ~2 s of records its partitions received while it was paused (a few hundred at 2000
    # records/s over 3 partitions): before the fix they stayed in flight without a cause
    assert m["in_flight"] == 0
    assert m["lost_by_cause"].get("never_arrived", 0) > 200


def test_a_paused_broker_that_restarts_resets_its_connections() -> None:
    # broker1 is paused at 3 s; broker0 crashes at 4 s, so clients ask for metadata again and
    # some of them ask broker1, whose socket holds their requests; broker1 is restarted at 6 s.
    # The reset sends them to another broker at once: every record is acknowledged within a
    # few seconds. Before the fix their requests vanished with the old process and they
    # waited request.timeout.ms (30 s): the slowest answers took ~32 s
    faults = [
        {"at_s": 3.0, "kind": "pause", "target": "broker1"},
        {"at_s": 4.0, "kind": "crash", "target": "broker0"},
        {"at_s": 6.0, "kind": "restart", "target": "broker1"},
    ]
    result = run_kafka(scenario(faults, kafka__producer__acks="1"))
    m = messages(result)
    assert m["in_flight"] == 0 and m["failed"] == 0 and m["lost"] == 0
    assert result.summary["latency_ms"]["ack"]["max"] < 10_000.0
    assert result.summary["latency_ms"]["end_to_end"]["max"] < 10_000.0


def test_acks0_requests_a_cut_holds_past_the_request_timeout_are_lost() -> None:
    # the producers are cut off for 5 s with request.timeout.ms at 2 s: TCP holds their acks=0
    # requests, and the connections are reset after 2 s; those records never reach a broker
    # (before the fix they vanished without a cause). What the cut held for less than 2 s
    # goes through at the heal
    cut = {"at_s": 3.0, "kind": "partition", "target": "producers", "duration_s": 5.0}
    result = run_kafka(
        scenario(
            [cut],
            kafka__producer__acks="0",
            kafka__producer__request_timeout_ms=2000.0,
            kafka__producer__delivery_timeout_ms=120_000.0,
        )
    )
    m = messages(result)
    assert m["in_flight"] == 0
    assert m["lost_by_cause"].get("never_arrived", 0) > 1000
