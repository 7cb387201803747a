"""Redis Cluster live resharding: slots move one at a time, clients follow -ASK and -MOVED.

Sizes. The behaviour runs use the built-in `redis_cluster_resharding` scenario at its CI size:
one master holds all 16384 slots at ~50% of its capacity (cpu_speed 0.01, 900 writes/s), a
second master owns none, and at 1 s redis-cli moves 8192 slots to it (~4 s of round trips and
MIGRATE calls). With 4000 uniform keys half the slots hold 2000 +- 32 keys (binomial sd
sqrt(4000)/2), so after the move each master serves 50% +- ~1% of the commands: 0.56 is a
margin of several sd. The p99 windows hold ~900 (before) and ~3600 (during) acknowledgements.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from redis_support import events_of, run_cluster

from models.redis.cluster_slots import HASH_SLOTS, SlotMap, describe_slots, initial_ranges
from simulator import load_scenario, run
from simulator.results import Result
from simulator.scenario import ScenarioError, apply_overrides, read_toml

SCENARIO = "redis_cluster_resharding"


def _ci_data(extra: list[str] | None = None) -> dict[str, Any]:
    """The built-in scenario's data at its CI size, with `extra` overrides."""
    data = read_toml(SCENARIO)
    apply_overrides(data, list(data["scenario"].get("ci_set", [])) + (extra or []))
    return data


def _keys_lost(result: Result) -> set[int]:
    """Keys with an acknowledged write whose final read (on the slot's owner) found nothing."""
    messages = result.messages
    assert messages is not None
    acked = set(messages["key"][np.isfinite(messages["ack_ms"])].tolist())
    present = set(messages["key"][messages["fate"] == "delivered"].tolist())
    return acked - present


@pytest.fixture(scope="module")
def resharded() -> Result:
    return run_cluster(_ci_data(), seed=1)


# --- slot bookkeeping --------------------------------------------------------------------------
def test_an_added_master_owns_no_slot_until_a_reshard() -> None:
    assert initial_ranges(3, 1) == [(0, 8191), (8192, 16383), (HASH_SLOTS, HASH_SLOTS - 1)]
    slot_map = SlotMap(3, 1000, empty_masters=1)
    assert slot_map.slots_of(2).size == 0
    assert slot_map.slots_of(0).size + slot_map.slots_of(1).size == HASH_SLOTS


def test_keys_in_slot_partitions_the_keys_by_their_hash_slot() -> None:
    slot_map = SlotMap(2, 5000)
    slots = slot_map.slots(np.arange(5000))
    seen = np.concatenate([slot_map.keys_in_slot(s) for s in range(HASH_SLOTS)])
    assert np.array_equal(np.sort(seen), np.arange(5000))
    for slot in (int(slots[0]), int(slots[4999])):
        assert np.all(slots[slot_map.keys_in_slot(slot)] == slot)


def test_slot_lists_print_as_ranges() -> None:
    assert describe_slots(np.arange(0, 5461)) == "0-5460"
    assert describe_slots(np.array([1, 2, 3, 7, 9, 10])) == "1-3 7 9-10"
    assert describe_slots(np.zeros(0, dtype=int)) == "none"


# --- configuration errors ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("redis.cluster.reshard.to_shard=5", "redis.cluster.reshard.to_shard: 5 is not a shard"),
        ("redis.cluster.reshard.to_shard=0", "redis.cluster.reshard.to_shard: 0 is also"),
        ("redis.cluster.reshard.slots=9000", "redis.cluster.reshard.slots: 9000 is more than"),
        ("redis.cluster.empty_masters=2", "redis.cluster.empty_masters: 2 leaves no master"),
    ],
)
def test_a_reshard_that_cannot_run_is_refused_naming_field_value_and_what_is_allowed(
    override: str, expected: str
) -> None:
    data = _ci_data([override])
    if "empty_masters" not in override:
        apply_overrides(data, ["redis.cluster.empty_masters=0"])
    with pytest.raises(ScenarioError) as err:
        load_scenario(data)
    assert expected in str(err.value)
    assert "allowed" in str(err.value)


def test_a_reshard_after_the_end_of_the_run_is_refused() -> None:
    data = _ci_data(["redis.cluster.reshard.at_s=10"])
    with pytest.raises(ScenarioError, match=r"reshard.at_s: 10.0 is not before the end"):
        run(load_scenario(data))


# --- behaviour -------------------------------------------------------------------------------------
def test_moving_half_the_slots_of_the_only_busy_master_splits_its_load_in_two(
    resharded: Result,
) -> None:
    model = resharded.summary["model"]
    assert model["slots_migrated"] == 8192
    assert model["keys_migrated"] > 0
    assert model["busiest_shard_share_before_reshard"] > 0.99
    assert model["busiest_shard_share_after_reshard"] < 0.56
    ((started, start),) = events_of(resharded, "reshard_started")
    ((done, end),) = events_of(resharded, "reshard_done")
    assert start["slots"] == 8192 and start["source"] == "redis0" and start["target"] == "redis1"
    assert end["slots_migrated"] == 8192 and done > started


def test_during_the_move_clients_see_ask_redirects_and_a_higher_p99_than_before(
    resharded: Result,
) -> None:
    model = resharded.summary["model"]
    assert model["ask_redirects"] > 0
    assert model["migrate_stall_ms"] > 0
    assert model["ack_p99_during_reshard_ms"] > model["ack_p99_before_reshard_ms"]
    # two loops share the load afterwards: less queueing than on one
    assert model["ack_p99_after_reshard_ms"] < model["ack_p99_before_reshard_ms"]


def test_after_the_move_one_moved_refreshes_the_clients_map_and_then_none(
    resharded: Result,
) -> None:
    model = resharded.summary["model"]
    assert model["moved_redirects"] > 0
    # the client fetches the whole map on -MOVED: at most one refresh once the move is over,
    # and -MOVED only for what the connections had in flight with the old map
    assert model["slot_map_refreshes_after_reshard"] <= 1
    assert model["moved_redirects_after_reshard"] <= _ci_data()["workload"]["producers"]


def test_no_acknowledged_write_is_lost_by_the_migration(resharded: Result) -> None:
    messages = resharded.summary["messages"]
    assert messages["lost"] == messages["failed"] == messages["indeterminate"] == 0
    assert resharded.summary["model"]["orphaned_keys"] == 0
    assert _keys_lost(resharded) == set()


def test_resharding_with_replicas_aof_and_pipelined_closed_loop_clients_keeps_every_write() -> None:
    data = _ci_data(
        [
            "redis.cluster.shards=3",
            "redis.cluster.empty_masters=0",
            "redis.cluster.reshard.slots=2000",
            "redis.cluster.reshard.to_shard=2",
            "redis.cluster.reshard.pipeline=3",
            "redis.cluster.key_hash_tags=300",
            "redis.appendonly=true",
            'workload.mode="closed"',
            "workload.pipeline=4",
            "workload.producers=16",
            "scenario.duration_s=4",
        ]
    )
    result = run_cluster(data, seed=1)
    model = result.summary["model"]
    assert model["slots_migrated"] == 2000
    assert model["migrate_calls"] > model["slots_migrated"] / 100  # hash tags: many keys a slot
    assert model["orphaned_keys"] == 0
    messages = result.summary["messages"]
    assert messages["lost"] == messages["failed"] == 0
    assert _keys_lost(result) == set()


def test_same_seed_same_resharding() -> None:
    data = _ci_data(["redis.cluster.reshard.slots=1500", "scenario.duration_s=3"])
    first, second = run_cluster(data, seed=3), run_cluster(data, seed=3)
    assert first.summary == second.summary


def _three_masters_one_new(faults: list[dict[str, Any]]) -> dict[str, Any]:
    """Two loaded masters and a new one; 4000 of shard 0's slots move to it at 1 s."""
    data = _ci_data(
        [
            "redis.cluster.shards=3",
            "redis.cluster.empty_masters=1",
            "redis.cluster.reshard.slots=4000",
            "redis.cluster.reshard.to_shard=2",
            "redis.cluster.node_timeout_ms=1000",
        ]
    )
    data["faults"] = faults
    return data


def test_the_promoted_replica_of_the_importing_master_has_the_migrated_keys() -> None:
    # the target's RESTOREs reach its replica like any write: a failover after the move
    # (crash at 5 s, promotion ~1.5 s later, replication lag ~ms) keeps them
    crash = {"at_s": 5.0, "kind": "crash", "target": "shard_2", "duration_s": 4.0}
    result = run_cluster(_three_masters_one_new([crash]), seed=1)
    model = result.summary["model"]
    assert model["failovers"] == 1 and model["slots_migrated"] == 4000
    assert model["keys_migrated"] > 0
    assert result.summary["messages"]["lost"] == 0
    assert _keys_lost(result) == set()


def test_a_paused_source_makes_redis_cli_wait_not_fail() -> None:
    pause = {"at_s": 2.0, "kind": "pause", "target": "shard_0", "duration_s": 0.5}
    result = run_cluster(_three_masters_one_new([pause]), seed=1)
    model = result.summary["model"]
    assert model["slots_migrated"] == 4000
    assert model["reshard_s"] > 0.5
    assert not events_of(result, "reshard_aborted")
    assert _keys_lost(result) == set()


def test_a_crashed_source_stops_the_resharding_and_keeps_what_had_moved() -> None:
    # no persistence: the restarted source comes back empty (its keys are lost, cause
    # no_persistence), but the keys MIGRATE had carried to the target are not
    crash = {"at_s": 2.0, "kind": "crash", "target": "shard_0", "duration_s": 1.0}
    data = _three_masters_one_new([crash])
    result = run_cluster(data, seed=1)
    model = result.summary["model"]
    ((_t, aborted),) = events_of(result, "reshard_aborted")
    assert 0 < model["slots_migrated"] == aborted["slots_migrated"] < 4000
    assert model["orphaned_keys"] == 0
    messages = result.summary["messages"]
    assert set(messages["lost_by_cause"]) == {"no_persistence"}
    assert messages["anomalies"]["resurrected"] == 0
    # what was lost is only what stayed on the source: no key of a slot that had moved (the
    # source's lowest-numbered slots go first), even one overwritten later on the target
    lost = result.messages.loc[lambda df: df["fate"] == "lost", "key"].to_numpy()
    keys = int(data["workload"]["keys"])
    slots = SlotMap(3, keys, empty_masters=1).slots(lost)
    assert lost.size > 0 and int(slots.min()) >= model["slots_migrated"]
