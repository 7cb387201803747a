"""Pub/sub stores nothing: who could not receive loses exactly that; BRPOP workers and crashes."""

from __future__ import annotations

from redis_support import events_of, messages, run_redis, spec

PUBSUB = {"workload": "pubsub", "save": ""}


def test_pubsub_delivers_each_message_to_every_connected_subscriber() -> None:
    result = run_redis(spec(PUBSUB, {"consumers": 3}, duration_s=1.0))
    m = result.summary["messages"]
    # one message id per subscriber copy: 3 copies of each of ~2000 publishes
    assert m["produced"] == 3 * round(m["produced"] / 3)
    assert m["delivered"] == m["produced"]
    assert m["acked"] == m["produced"]  # the PUBLISH reply acknowledges it


def test_a_disconnected_subscriber_loses_exactly_what_was_published_meanwhile() -> None:
    faults = [{"at_s": 1.0, "kind": "consumer_crash", "target": "a_subscriber", "duration_s": 1.0}]
    result = run_redis(spec(PUBSUB, {"consumers": 2}, faults=faults))
    frame = messages(result)
    mine = frame[frame["key"] == 0]  # the crashed subscriber's copies (key = subscriber index)
    other = frame[frame["key"] == 1]
    assert len(other) > 0
    assert (other["fate"] == "delivered").all()
    lost = mine[mine["fate"] == "lost"]
    assert set(lost["cause"]) == {"pubsub_not_connected"}
    # published while it was down: from the crash until it resubscribed (one way after restart)
    assert lost["intended_ms"].min() >= 1000.0
    assert lost["intended_ms"].max() <= 2001.0
    outside = mine[(mine["intended_ms"] < 999.0) | (mine["intended_ms"] > 2002.0)]
    assert (outside["fate"] == "delivered").all()
    assert len(lost) > 0.95 * len(
        mine[(mine["intended_ms"] > 1000.5) & (mine["intended_ms"] < 2000.0)]
    )


def test_a_slow_subscriber_is_cut_off_at_the_output_buffer_limit() -> None:
    # 2000 x 1 KB messages/s; the subscriber slows to 100 ms per message: its buffer grows by
    # ~2 MB/s, passes the 1 MB hard limit after ~0.6 s (256 KB sit in socket buffers first)
    redis = {**PUBSUB, "client_output_buffer_limit_pubsub": "1mb 512kb 60"}
    workload = {"consumers": 1, "processing_ms": 0.1, "value_bytes": 1000}
    faults = [
        {
            "at_s": 1.0,
            "kind": "slow_consumer",
            "target": "a_subscriber",
            "factor": 1000,
            "duration_s": 1.5,
        }
    ]
    result = run_redis(spec(redis, workload, faults=faults))
    kills = events_of(result, "client_killed")
    assert len(kills) == 1
    killed_at, detail = kills[0]
    m = result.summary["messages"]
    # exactly the copies that sat in Redis's output buffer are lost with that cause
    assert m["lost_by_cause"]["pubsub_output_buffer_limit"] == detail["lost"]
    assert detail["lost"] > 0
    frame = messages(result)
    cut = frame[frame["cause"] == "pubsub_output_buffer_limit"]
    assert cut["intended_ms"].max() <= killed_at + 1.0
    # then it is not subscribed until it has read what reached it and resubscribed
    gone = frame[frame["cause"] == "pubsub_not_connected"]
    assert gone["intended_ms"].min() >= killed_at - 1.0
    assert (frame[frame["intended_ms"] < 1000.0]["fate"] == "delivered").all()


def test_a_pubsub_message_nobody_subscribed_to_is_lost() -> None:
    result = run_redis(spec(PUBSUB, {"consumers": 0}, duration_s=0.5))
    m = result.summary["messages"]
    assert m["lost"] == m["produced"] > 0
    assert set(m["lost_by_cause"]) == {"pubsub_not_connected"}


LIST = {"workload": "list", "save": ""}


def test_brpop_workers_process_every_pushed_item_once() -> None:
    result = run_redis(spec(LIST, {"consumers": 3, "processing_ms": 1.0}, duration_s=1.0))
    m = result.summary["messages"]
    assert m["delivered"] == m["produced"]
    assert m["duplicates"] == 0


def test_a_worker_that_crashes_after_popping_loses_that_item() -> None:
    workload = {"consumers": 2, "processing_ms": 5.0, "rate_per_s": 200}
    faults = [{"at_s": 1.0, "kind": "consumer_crash", "target": "a_worker", "duration_s": 0.5}]
    result = run_redis(spec(LIST, workload, faults=faults))
    m = result.summary["messages"]
    # at 200 items/s and 5 ms each a worker is busy half of the time: it held 0 or 1 item
    assert m["lost"] == m["lost_by_cause"].get("popped_not_processed", 0) <= 1
    assert m["delivered"] + m["lost"] == m["produced"]


def test_a_worker_crash_with_an_item_in_hand_loses_it() -> None:
    # processing longer than the gap between items: the worker always holds one
    workload = {"consumers": 1, "processing_ms": 20.0, "rate_per_s": 40}
    faults = [{"at_s": 1.0, "kind": "consumer_crash", "target": "a_worker", "duration_s": 0.5}]
    result = run_redis(spec(LIST, workload, faults=faults))
    assert result.summary["messages"]["lost_by_cause"] == {"popped_not_processed": 1}
