"""Consumer groups: rebalances, committed offsets and the delivery semantics they give.

The runs share one shape (`_group_run`): 2000 records/s for 10 s on 3 partitions, consumers that
need `processing_ms` per record, and a crash of `consumer0` in the middle. With range
assignment consumer0 owns partitions 0 and 1 (about 1333 records/s); at 0.8 ms per record it is
saturated, so when it crashes it is always in the middle of a poll with records processed since
its last commit: the outcomes below do not hang on where the crash falls. The group's
session.timeout.ms is 6 s (kafka_helpers), so its partitions move within the run.
"""

from __future__ import annotations

import json
from typing import Any

from kafka_helpers import events, messages, run_kafka, scenario

from models.kafka.group import assign
from simulator import load_scenario, run

# 7 s: after the auto-commit at 4 s (auto-commits run every 5 s from the start of the warm-up
# at -1 s), so ~3 s of consumer0's processing is uncommitted when it crashes
CRASH = [{"at_s": 7.0, "kind": "consumer_crash", "target": "a_consumer"}]
REDELIVERED = "redelivered_after_consumer_crash"


def _group_run(faults: list[dict[str, Any]] | None = None, seed: int = 1, **settings: Any) -> Any:
    base: dict[str, Any] = {
        "workload__consumers": 2,
        "workload__processing_ms": 0.8,
        "scenario__drain_s": 60.0,
    }
    base.update(settings)
    return run_kafka(scenario(CRASH if faults is None else faults, **base), seed=seed)


def test_auto_commit_consumer_crash_redelivers_records_and_loses_none() -> None:
    m = messages(_group_run())
    assert m["duplicates_by_cause"].get(REDELIVERED, 0) > 0
    assert m["lost"] == 0 and m["skipped"] == 0 and m["in_flight"] == 0
    # what was processed after the last auto-commit comes again: ~3 s of the crashed member's
    # ~1333 records/s at most (+ one poll per partition in progress)
    assert m["duplicates_by_cause"][REDELIVERED] <= 3.0 * 1333 + 2 * 500


def test_commit_before_processing_and_crash_skips_records_without_duplicates() -> None:
    m = messages(
        _group_run(
            kafka__consumer__enable_auto_commit=False,
            kafka__consumer__manual_commit="before_processing",
        )
    )
    assert m["skipped_by_cause"].get("committed_before_processing", 0) > 0
    assert m["duplicates_by_cause"].get(REDELIVERED, 0) == 0
    assert m["lost"] == 0 and m["in_flight"] == 0


def test_commit_before_processing_loses_nothing_to_a_rebalance_of_live_members() -> None:
    # kafka_consumer_crash_auto_commit at CI size with commits before processing: consumer0
    # crashes at 7 s and restarts at 15 s, and its JoinGroup revokes the partitions of the busy
    # survivor, whose poll in progress was committed before processing. A live member finishes
    # what poll() returned before the revocation, so nothing may stay undelivered (the model
    # once left that poll's rest in flight forever: 485 records)
    spec = load_scenario(
        "kafka_consumer_crash_auto_commit",
        [
            "kafka.consumer.enable_auto_commit=false",
            'kafka.consumer.manual_commit="before_processing"',
        ],
        ci=True,
    )
    m = messages(run(spec, seed=1, check_invariants=True))
    assert m["in_flight"] == 0 and m["lost"] == 0, m


def test_manual_commit_after_processing_redelivers_at_most_the_polls_in_progress() -> None:
    manual = messages(_group_run(kafka__consumer__enable_auto_commit=False))
    auto = messages(_group_run())
    dups = manual["duplicates_by_cause"].get(REDELIVERED, 0)
    # each of consumer0's two partitions had at most one poll (max.poll.records 500) processed
    # but not committed
    assert dups <= 2 * 500
    assert dups < auto["duplicates_by_cause"][REDELIVERED]
    assert manual["lost"] == 0 and manual["skipped"] == 0 and manual["in_flight"] == 0


def test_crashed_members_partitions_move_to_the_survivor_after_the_session_timeout() -> None:
    result = _group_run([{"at_s": 2.0, "kind": "consumer_crash", "target": "a_consumer"}])
    rebalances = events(result, "rebalance")
    later = rebalances[rebalances["t_ms"] > 2000.0]
    first = later.iloc[0]
    # consumer_crash at 2 s; session.timeout.ms 6 s: removed at ~8 s (+ the rejoin round:
    # consumer1 finishes its poll in progress, at most 500 x 0.8 ms)
    assert 8_000.0 <= first["t_ms"] <= 8_000.0 + 1_000.0
    assert json.loads(first["detail"])["assignment"] == {"consumer1": [0, 1, 2]}


def test_a_member_that_crashes_a_second_time_is_removed_again_after_its_session() -> None:
    # consumer0 crashes at 2 s, is back at 4 s (its restart's join round waited for the first
    # session to expire, at ~8 s), then crashes for good at 12 s: its second session expires at
    # ~18 s and its partitions move to consumer1 (before the fix the finished round still
    # "waited" for consumer0 and the second expiry started nothing)
    crashes = [
        {"at_s": 2.0, "kind": "consumer_crash", "target": "a_consumer", "duration_s": 2.0},
        {"at_s": 12.0, "kind": "consumer_crash", "target": "a_consumer"},
    ]
    result = _group_run(crashes, scenario__duration_s=30.0)
    rebalances = events(result, "rebalance")
    second = rebalances[rebalances["t_ms"] > 12_000.0].iloc[0]
    assert 18_000.0 <= second["t_ms"] <= 18_000.0 + 1_000.0
    assert json.loads(second["detail"])["assignment"] == {"consumer1": [0, 1, 2]}


def _details(result: Any, kind: str) -> list[dict[str, Any]]:
    return [json.loads(d) for d in events(result, kind)["detail"]]


def _unowned_ms(result: Any) -> float:
    return float(sum(d["unowned_partition_ms"] for d in _details(result, "rebalance")))


def test_eager_rebalance_stops_more_partition_time_than_a_cooperative_one() -> None:
    # the same membership changes with the same (sticky) assignment: consumer0 crashes at 2 s
    # (its partitions move at ~8 s), and is back at 9 s as a new member taking 2 of 6 back.
    # A member gives its partitions up when it finishes the poll it is processing, so each
    # strategy's cost also holds the polls in progress, which differ between the two runs after
    # their first rebalance: at 25% utilization they are short in both (at 75% one member's
    # backlog can outweigh the protocol's difference in one rebalance)
    faults = [{"at_s": 2.0, "kind": "consumer_crash", "target": "a_consumer", "duration_s": 7.0}]
    settings: dict[str, Any] = {
        "workload__consumers": 3,
        "workload__rate_per_s": 1500.0,
        "workload__processing_ms": 0.5,
        "kafka__topic__partitions": 6,
    }
    runs = {
        strategy: _group_run(
            faults, **settings, kafka__consumer__partition_assignment_strategy=strategy
        )
        for strategy in ("sticky", "cooperative-sticky")
    }
    joined = {
        strategy: [d for d in _details(result, "rebalance") if d["reason"] == "consumer0 joined"]
        for strategy, result in runs.items()
    }
    eager, cooperative = joined["sticky"][0], joined["cooperative-sticky"][0]
    assert eager["assignment"] == cooperative["assignment"]
    # eager: every partition stops; cooperative: only the two that move to the new member
    assert eager["paused_partitions"] == list(range(6))
    assert len(cooperative["paused_partitions"]) == 2
    assert eager["unowned_partition_ms"] > cooperative["unowned_partition_ms"] > 0
    assert _unowned_ms(runs["sticky"]) > _unowned_ms(runs["cooperative-sticky"])
    for result in runs.values():
        m = messages(result)
        assert m["lost"] == 0 and m["in_flight"] == 0


def test_a_restart_before_the_old_session_expires_stalls_an_eager_group_until_it_does() -> None:
    # two members, three partitions: consumer0 owns two. It crashes at 2 s and is back at 4 s as
    # a new member; its old membership lasts until session.timeout.ms (6 s) after the crash,
    # i.e. 8 s. The new member's JoinGroup starts a rebalance at once, and the join round waits
    # for the old member until 8 s: eager members revoke everything as they rejoin (~4 s) and
    # consume nothing until then; cooperative members keep their partitions meanwhile (why
    # static membership, KIP-345, and the cooperative protocol exist)
    faults = [{"at_s": 2.0, "kind": "consumer_crash", "target": "a_consumer", "duration_s": 2.0}]
    runs = {
        strategy: _group_run(faults, kafka__consumer__partition_assignment_strategy=strategy)
        for strategy in ("range", "cooperative-sticky")
    }
    crashed_partitions_ms = 2 * 6000.0  # consumer0's two partitions, from 2 s to 8 s
    for strategy, result in runs.items():
        (joined,) = [d for d in _details(result, "rebalance") if d["reason"] == "consumer0 joined"]
        # one rebalance, completed once the old session expired (8 s, + join/sync round trips)
        (t_ms,) = events(result, "rebalance").query("t_ms > 3000")["t_ms"].tolist()
        assert 8000.0 <= t_ms <= 8600.0, (strategy, t_ms)
        m = messages(result)
        assert m["lost"] == 0 and m["in_flight"] == 0, strategy
        if strategy == "range":
            # consumer1's partition stopped too, from its rejoin at ~4 s
            assert joined["paused_partitions"] == [0, 1, 2]
            assert joined["unowned_partition_ms"] >= crashed_partitions_ms + 3500.0
        else:
            # only consumer0's two partitions waited
            assert len(joined["paused_partitions"]) == 2
            assert joined["unowned_partition_ms"] <= crashed_partitions_ms + 1000.0


def test_member_past_max_poll_interval_leaves_and_its_partitions_move() -> None:
    # one poll = 500 records x 0.8 ms = 0.4 s; slowed 10x it takes 4 s > max.poll.interval.ms 2 s
    faults = [
        {
            "at_s": 3.0,
            "kind": "slow_consumer",
            "target": "a_consumer",
            "factor": 10.0,
            "duration_s": 4.0,
        }
    ]
    result = _group_run(faults, kafka__consumer__max_poll_interval_ms=2000.0)
    left = events(result, "member_left")
    assert list(left["node"]) == ["consumer0"]
    assert json.loads(left.iloc[0]["detail"])["reason"] == "max_poll_interval_exceeded"
    rebalances = events(result, "rebalance")
    after = [
        json.loads(d)["assignment"]
        for t, d in zip(rebalances["t_ms"], rebalances["detail"], strict=True)
        if t > left.iloc[0]["t_ms"]
    ]
    assert after[0] == {"consumer1": [0, 1, 2]}
    # it rejoins once fast again and gets partitions back
    assert any(a.get("consumer0") for a in after[1:])
    m = messages(result)
    assert m["lost"] == 0 and m["in_flight"] == 0


def test_more_consumers_than_partitions_leaves_some_idle() -> None:
    result = _group_run([], workload__consumers=5)
    initial = _details(result, "rebalance")[0]["assignment"]
    assert sorted(len(parts) for parts in initial.values()) == [0, 0, 1, 1, 1]
    assert messages(result)["delivered"] == messages(result)["acked"]


def test_new_group_with_latest_skips_the_backlog_and_earliest_redelivers_it() -> None:
    # the only consumer crashes before the first auto-commit (5 s after the start): nothing
    # committed, so its successor starts from auto.offset.reset
    faults = [{"at_s": 1.0, "kind": "consumer_crash", "target": "a_consumer", "duration_s": 1.0}]
    latest = messages(_group_run(faults, workload__consumers=1, workload__processing_ms=0.0))
    assert latest["skipped_by_cause"].get("offset_reset_latest", 0) > 0
    assert latest["lost"] == 0 and latest["in_flight"] == 0
    earliest = messages(
        _group_run(
            faults,
            workload__consumers=1,
            workload__processing_ms=0.0,
            kafka__consumer__auto_offset_reset="earliest",
        )
    )
    assert earliest["skipped"] == 0
    assert earliest["duplicates_by_cause"].get(REDELIVERED, 0) > 0


def test_assignors_split_partitions_as_kafka_does() -> None:
    members = ["c0", "c1"]
    none: dict[int, str | None] = dict.fromkeys(range(5))
    assert assign("range", list(range(5)), members, none) == {
        0: "c0",
        1: "c0",
        2: "c0",
        3: "c1",
        4: "c1",
    }
    assert assign("roundrobin", list(range(5)), members, none) == {
        0: "c0",
        1: "c1",
        2: "c0",
        3: "c1",
        4: "c0",
    }
    # sticky keeps what a member had, and balances the rest
    previous: dict[int, str | None] = {0: "c1", 1: "c1", 2: "c1", 3: None, 4: None}
    sticky = assign("sticky", list(range(5)), ["c0", "c1", "c2"], previous)
    assert [sticky[p] for p in (0, 1)] == ["c1", "c1"]
    assert sorted(list(sticky.values()).count(m) for m in ("c0", "c1", "c2")) == [1, 2, 2]


def test_consumer_lag_climbs_while_a_crashed_members_partitions_have_no_owner() -> None:
    # consumer0 (partitions 0 and 1, ~1333 records/s) crashes at 2 s; they move at ~8 s
    result = _group_run([{"at_s": 2.0, "kind": "consumer_crash", "target": "a_consumer"}])
    ts = result.timeseries.set_index("t_ms")["consumer_lag"]
    before = ts[(ts.index > 0.0) & (ts.index < 2000.0)].max()
    pause = ts[(ts.index > 6000.0) & (ts.index < 8000.0)].min()
    # ~4 s of two partitions' records wait; the survivor keeps up with its own partition
    assert pause > 4.0 * 1000.0 > before
    # after the drain every record has been consumed; the last lag sample (taken up to one
    # sampling interval before the end) is back near zero
    assert result.summary["messages"]["in_flight"] == 0
    assert ts.index.max() > 10_000.0
    assert ts.iloc[-1] < 0.01 * pause
