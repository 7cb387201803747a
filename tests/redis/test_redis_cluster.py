"""Redis Cluster: hash slots, routing, scaling with shards, failover, full coverage.

Sizes. Routing and failover runs send 3000 writes/s over 1000 keys for a few seconds, so each of
the three shards gets ~1000 writes/s (Poisson: a window holding N writes varies by ~sqrt(N)).
Scaling runs slow the CPU (cpu_speed 0.01: one event loop serves ~1800 SET/s) and offer four
times that for 2 s, so every shard is saturated and its backlog drains at its capacity.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from redis_support import events_of, run_cluster

from models.redis.cluster_slots import (
    HASH_SLOTS,
    SlotMap,
    crc16,
    crc16_many,
    key_slot,
    slot_ranges,
)
from simulator import load_scenario, run
from simulator.results import Result
from simulator.scenario import ScenarioError

RATE = 3000.0


def _spec(
    cluster: dict[str, Any],
    redis: dict[str, Any] | None = None,
    workload: dict[str, Any] | None = None,
    faults: list[dict[str, Any]] | None = None,
    duration_s: float = 4.0,
) -> dict[str, Any]:
    return {
        "scenario": {"duration_s": duration_s, "warmup_s": 0.2, "drain_s": 20.0, "seed": 1},
        "system": {"kind": "redis"},
        "workload": {"rate_per_s": RATE, "producers": 4, "keys": 1000, **(workload or {})},
        "redis": {"save": "", **(redis or {}), "cluster": {"enabled": True, **cluster}},
        "faults": faults or [],
    }


def _shard_of(result: Result, shards: int) -> np.ndarray:
    messages = result.messages
    assert messages is not None
    return SlotMap(shards, 1000).shards(messages["key"].to_numpy())


# --- key distribution -------------------------------------------------------------------------
def test_crc16_is_the_xmodem_variant_of_the_cluster_spec() -> None:
    # Redis Cluster spec, appendix A: the output for "123456789" is 0x31C3
    assert crc16(b"123456789") == 0x31C3
    assert key_slot("123456789") == 0x31C3 % HASH_SLOTS
    assert crc16(b"") == 0


def test_vectorized_crc16_agrees_with_the_one_key_version() -> None:
    rng = np.random.default_rng(7)
    alphabet = list(b"ab{}:xyz0123")
    sizes = rng.integers(0, 14, size=500)
    names = [bytes(rng.choice(alphabet, size=int(k)).tolist()) for k in sizes]
    names += [b"123456789", b"{user1000}.following", b"foo{}{bar}", b"foo{{bar}}zap"]
    vector = crc16_many(np.array(names, dtype=object).astype(np.bytes_)) % HASH_SLOTS
    assert vector.tolist() == [key_slot(n) for n in names]


def test_hash_tags_put_keys_in_one_slot() -> None:
    # the spec's examples: only the substring between the first { and the next } is hashed
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot("{user1000}.following") == key_slot("user1000")
    assert key_slot("foo{}{bar}") == crc16(b"foo{}{bar}") % HASH_SLOTS  # empty tag: whole key
    assert key_slot("foo{{bar}}zap") == key_slot("{bar")
    assert key_slot("foo{bar}{zap}") == key_slot("bar")


def test_workload_keys_with_a_hash_tag_live_in_the_tags_slot() -> None:
    keys = np.arange(5000)
    slots = SlotMap(3, 5000, hash_tags=7).slots(keys)
    assert slots.tolist() == [key_slot(f"tag{n % 7}") for n in keys.tolist()]
    assert np.unique(slots).size == 7  # seven tags: seven slots for 5000 keys


@pytest.mark.parametrize("masters", [1, 2, 3, 5, 7, 64])
def test_slot_ranges_cover_every_slot_once_and_evenly(masters: int) -> None:
    ranges = slot_ranges(masters)
    assert ranges[0][0] == 0 and ranges[-1][1] == HASH_SLOTS - 1
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))
    sizes = [last - first + 1 for first, last in ranges]
    assert max(sizes) - min(sizes) <= 1
    if masters == 3:  # what redis-cli --cluster create assigns
        assert ranges == [(0, 5460), (5461, 10922), (10923, 16383)]


def test_uniform_keys_spread_over_the_shards() -> None:
    shard = SlotMap(3, 30_000).shards(np.arange(30_000))
    share = np.bincount(shard, minlength=3) / shard.size
    # 30 000 keys: a binomial share of 1/3 has sd 0.27%; 2% is > 7 sd
    assert np.all(np.abs(share - 1 / 3) < 0.02), share


# --- scaling ----------------------------------------------------------------------------------
def _saturated(shards: int, distribution: str = "uniform", hash_tags: int = 0) -> Result:
    workload = {"rate_per_s": 7200.0, "keys": 1000, "key_distribution": distribution}
    if distribution == "zipf":
        workload["zipf_s"] = 4.0  # the hottest key takes ~92% of the commands
    redis = {"cpu_speed": 0.01, "client": {"timeout_ms": 0}}
    cluster = {"shards": shards, "replicas_per_shard": 0, "key_hash_tags": hash_tags}
    return run_cluster(_spec(cluster, redis, workload, duration_s=2.0))


def test_three_shards_serve_three_times_what_one_serves_with_uniform_keys() -> None:
    one, three = _saturated(1), _saturated(3)
    rate_one = one.summary["model"]["completion_rate_per_s"]
    rate_three = three.summary["model"]["completion_rate_per_s"]
    busiest = three.summary["model"]["busiest_shard_share"]
    # the busiest shard finishes last: the gain is 1 / its share (~3); 14 400 commands make the
    # share's noise ~1%, iteration overheads and the drain's end a few % more
    assert rate_three / rate_one == pytest.approx(1.0 / busiest, rel=0.08)
    assert rate_three / rate_one > 2.6
    assert one.summary["messages"]["lost"] == three.summary["messages"]["lost"] == 0


def test_a_hot_key_stays_on_one_shard_and_does_not_scale() -> None:
    one, three = _saturated(1, "zipf"), _saturated(3, "zipf")
    assert three.summary["model"]["busiest_shard_share"] > 0.9
    gain = (
        three.summary["model"]["completion_rate_per_s"]
        / one.summary["model"]["completion_rate_per_s"]
    )
    assert gain < 1.3  # with uniform keys the same cluster gives ~3


# --- failover ---------------------------------------------------------------------------------
def _crash_run(kind: str, cluster: dict[str, Any], extra: list[dict[str, Any]] | None = None):
    faults = [*(extra or []), {"at_s": 1.5, "kind": kind, "target": "shard_0", "duration_s": 2.0}]
    return run_cluster(_spec({"node_timeout_ms": 1000.0, **cluster}, faults=faults, duration_s=5.0))


def test_a_replica_takes_over_after_node_timeout_and_the_election_delay() -> None:
    result = _crash_run("crash", {})
    (t_fail, _), *_ = events_of(result, "cluster_node_fail")
    failovers = events_of(result, "failover")
    assert len(failovers) == 1 and failovers[0][1]["new_primary"] == "redis0-replica1"
    t_promoted = failovers[0][0]
    # FAIL: node timeout after the crash (the bus checks every 100 ms); promotion: the
    # election delay 500 ms + random(0, 500) ms for the best-ranked replica
    assert 2500.0 <= t_fail <= 2500.0 + 100.0 + 1e-6
    assert t_fail + 500.0 <= t_promoted <= t_fail + 1000.0
    assert result.summary["model"]["failovers"] == 1
    assert result.summary["model"]["moved_redirects"] > 0  # the clients found the new master
    # a crashed process's kernel still sent what it had written: nothing acknowledged is lost
    assert result.summary["messages"]["lost"] == 0


def test_writes_to_the_failed_shard_fail_until_the_promotion() -> None:
    result = _crash_run("crash", {"require_full_coverage": False})
    (t_promoted, _), *_ = events_of(result, "failover")
    messages = result.messages
    assert messages is not None
    shard = _shard_of(result, 3)
    t = messages["intended_ms"].to_numpy()
    failed = (messages["fate"] == "failed").to_numpy()
    outage = (t > 1600.0) & (t < t_promoted - 50.0)
    assert failed[outage & (shard == 0)].mean() > 0.95  # connection refused
    assert failed[outage & (shard != 0)].mean() == 0.0  # other slots served all along
    assert failed[(t > t_promoted + 100.0) & (shard == 0)].mean() == 0.0


def _replica_delay(delay_ms: float) -> list[dict[str, Any]]:
    fault = {"kind": "delay", "target": "redis0-replica1", "delay_ms": delay_ms}
    return [{"at_s": 0.5, "duration_s": 2.0, **fault}] if delay_ms else []


def test_power_loss_loses_about_the_replication_lag_window_of_one_shard() -> None:
    lags = {}
    for delay_ms in (0.0, 100.0, 300.0):
        result = _crash_run("power_loss", {}, _replica_delay(delay_ms))
        lost = result.summary["messages"]["lost_by_cause"].get("discarded_on_failover", 0)
        assert result.summary["messages"]["lost"] == lost
        lags[delay_ms] = lost
        # shard 0 takes ~1/3 of 3000 writes/s: a lag window of d ms holds ~d writes; allow the
        # 10 ms replica tick, the link itself, and 4 sd of Poisson noise
        bound = (delay_ms + 20.0) * RATE / 3 / 1000.0
        assert lost <= bound + 4 * np.sqrt(bound) + 5, (delay_ms, lost)
    assert lags[300.0] > lags[100.0] > lags[0.0]
    assert lags[300.0] >= 0.6 * 300.0 * RATE / 3 / 1000.0


# --- coverage ---------------------------------------------------------------------------------
@pytest.mark.parametrize("full_coverage", [True, False])
def test_a_shard_without_replica_stops_all_or_only_its_slots(full_coverage: bool) -> None:
    cluster = {"replicas_per_shard": 0, "require_full_coverage": full_coverage}
    result = _crash_run("crash", cluster)
    messages = result.messages
    assert messages is not None
    shard = _shard_of(result, 3)
    t = messages["intended_ms"].to_numpy()
    failed = (messages["fate"] == "failed").to_numpy()
    # FAIL at ~2.5 s (node timeout after the crash); the master is back at 3.5 s
    window = (t > 2700.0) & (t < 3400.0)
    others = failed[window & (shard != 0)].mean()
    assert failed[window & (shard == 0)].mean() > 0.95
    assert result.summary["model"]["failovers"] == 0
    if full_coverage:
        assert others > 0.95  # CLUSTERDOWN from every node
        assert result.summary["model"]["clusterdown_replies"] > 0
        # the FAIL flag of a master that kept its slots clears 2 x node timeout after FAIL
        assert result.summary["model"]["clusterdown_s"] >= 2.0 - 0.1
    else:
        assert others == 0.0
        assert result.summary["model"]["clusterdown_replies"] == 0
    # without persistence (save "") the master restarts empty: only its own slots lose data
    lost = (messages["fate"] == "lost").to_numpy()
    assert lost.any() and np.all(shard[lost] == 0)


@pytest.mark.parametrize("target", ["a_consumer", "subscribers", "a_worker"])
def test_a_fault_on_a_consumer_role_is_a_no_op_in_a_cluster(target: str) -> None:
    # every Redis role is a valid target; a cluster runs the kv workload, so there is no
    # consumer to hit (found by fuzzing: the run crashed when the fault fired)
    faults = [{"at_s": 0.5, "kind": "crash", "target": target, "duration_s": 0.5}]
    quiet = run_cluster(_spec({}, duration_s=1.0))
    hit = run_cluster(_spec({}, faults=faults, duration_s=1.0))
    assert hit.summary["messages"] == quiet.summary["messages"]


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_same_seed_same_cluster_run(mode: str) -> None:
    data = _spec(
        {"node_timeout_ms": 1000.0},
        redis={"client": {"retries": 1, "timeout_ms": 500.0}},
        workload={"mode": mode, "clients": 20, "pipeline": 4},
        faults=[{"at_s": 0.5, "kind": "power_loss", "target": "shard_1", "duration_s": 2.0}],
        duration_s=3.0,
    )
    a, b = run_cluster(data), run_cluster(data)
    assert a.summary == b.summary
    assert a.summary["model"]["failovers"] == 1


def test_a_master_cut_off_with_its_clients_stops_writes_after_node_timeout() -> None:
    """The minority side: the master cannot reach a majority of masters, so after node timeout
    it answers CLUSTERDOWN; the majority promotes its replica; at the heal the old master
    becomes a replica and drops what it took meanwhile: about node timeout's worth of writes."""
    majority = ["redis1", "redis2", "redis0-replica1", "redis1-replica1", "redis2-replica1"]
    cut = {"at_s": 1.0, "kind": "partition", "groups": [["redis0", "clients"], majority]}
    result = run_cluster(_spec({"node_timeout_ms": 800.0}, faults=[{**cut, "duration_s": 2.5}]))
    m = result.summary["messages"]
    discarded = m["lost_by_cause"].get("discarded_on_failover", 0)
    assert m["lost"] == discarded > 0
    assert result.summary["model"]["failovers"] == 1
    # shard 0 takes ~1000 writes/s; the window is node timeout + up to one 100 ms bus tick
    window_writes = (800.0 + 100.0) * RATE / 3 / 1000.0
    assert discarded <= window_writes + 4 * np.sqrt(window_writes)
    assert discarded >= 0.7 * 800.0 * RATE / 3 / 1000.0
    minority = [d for _t, d in events_of(result, "cluster_state") if d.get("reason") == "minority"]
    assert minority and minority[0]["state"] == "fail"


@pytest.mark.parametrize(
    ("redis", "workload", "field"),
    [
        ({"workload": "list"}, {}, "cluster.enabled"),
        ({"replicas": 1}, {}, "cluster.enabled"),
        ({"cluster": {"shards": 0}}, {}, "cluster.shards"),
        ({"cluster": {"node_timeout_ms": 0}}, {}, "cluster.node_timeout_ms"),
        ({"client": {"wait_replicas": 1}}, {"mode": "closed"}, "redis.client.wait_replicas"),
    ],
)
def test_bad_cluster_settings_are_refused_with_the_field_named(
    redis: dict[str, Any], workload: dict[str, Any], field: str
) -> None:
    cluster = {"enabled": True, **redis.pop("cluster", {})}
    data = _spec({}, workload=workload)
    data["redis"] = {**redis, "cluster": cluster}
    with pytest.raises(ScenarioError) as caught:
        run(load_scenario(data))
    assert field in str(caught.value)


def test_the_most_up_to_date_replica_wins_the_election() -> None:
    """Rank 0 (largest offset) waits 500-1000 ms, rank 1 a second more: with the first
    replica's link slowed, the second one is promoted and little is lost."""
    slow_link = {"kind": "delay", "target": "redis0-replica1", "delay_ms": 300.0}
    faults = [
        {"at_s": 0.5, "duration_s": 2.0, **slow_link},
        {"at_s": 1.5, "kind": "power_loss", "target": "shard_0", "duration_s": 2.0},
    ]
    cluster = {"node_timeout_ms": 1000.0, "replicas_per_shard": 2}
    result = run_cluster(_spec(cluster, faults=faults, duration_s=5.0))
    (t_fail, _), *_ = events_of(result, "cluster_node_fail")
    (t_promoted, failover), *_ = events_of(result, "failover")
    assert failover["new_primary"] == "redis0-replica2"
    assert t_fail + 500.0 <= t_promoted <= t_fail + 1000.0
    # the slow replica lacked ~300 writes; the promoted one only its link's last moments
    assert result.summary["messages"]["lost"] < 0.2 * 300.0 * RATE / 3 / 1000.0


# --- closed loop ------------------------------------------------------------------------------
def _closed(shards: int, distribution: str = "uniform", enabled: bool = True) -> Result:
    """redis-benchmark style: 50 connections, pipelines of 10, no think time."""
    workload = {"mode": "closed", "clients": 50, "pipeline": 10, "key_distribution": distribution}
    if distribution == "zipf":
        workload["zipf_s"] = 4.0
    cluster = {"shards": shards, "replicas_per_shard": 0}
    data = _spec(cluster, {"cpu_speed": 0.01}, workload, duration_s=2.0)
    data["redis"]["cluster"]["enabled"] = enabled
    return run_cluster(data)


def test_closed_loop_clients_split_each_pipeline_by_node_and_scale_with_shards() -> None:
    single = _closed(1, enabled=False).summary["throughput"]["acked_per_s"]
    one = _closed(1).summary["throughput"]["acked_per_s"]
    three = _closed(3).summary["throughput"]["acked_per_s"]
    hot = _closed(3, "zipf").summary["throughput"]["acked_per_s"]
    # a one-master cluster is the single server (the same loop and costs; ~15 000 acks)
    assert one == pytest.approx(single, rel=0.02)
    # each connection's 10 commands become ~3 smaller pipelines, one per master, and the
    # connection waits for the slowest: more than one master's worth, less than three
    assert 1.4 * one < three < 3.0 * one
    assert hot < 1.3 * one  # the hot key's master does (nearly) all the work


def test_allow_reads_when_down_serves_reads_but_not_writes() -> None:
    """Half the commands are GETs; while the cluster is down only the writes meet CLUSTERDOWN
    with cluster-allow-reads-when-down yes (thousands of commands: the halves differ by ~2%)."""
    runs = {}
    for allow in (False, True):
        cluster = {"replicas_per_shard": 0, "allow_reads_when_down": allow}
        faults = [{"at_s": 1.5, "kind": "crash", "target": "shard_0", "duration_s": 2.0}]
        data = _spec({"node_timeout_ms": 1000.0, **cluster}, faults=faults, duration_s=5.0)
        data["redis"]["ops"] = {"read_ratio": 0.5}
        runs[allow] = run_cluster(data).summary
    refused = {allow: s["model"]["clusterdown_replies"] for allow, s in runs.items()}
    assert refused[False] > 1000
    assert refused[True] == pytest.approx(0.5 * refused[False], rel=0.1)
    # the writes fare the same either way
    failed = {allow: s["messages"]["failed"] for allow, s in runs.items()}
    assert failed[True] == pytest.approx(failed[False], rel=0.05)


def test_one_hash_tag_for_every_key_puts_the_whole_load_on_one_master() -> None:
    tagged = _saturated(3, hash_tags=1).summary["model"]
    assert tagged["busiest_shard_share"] == 1.0
    one = _saturated(1).summary["model"]["completion_rate_per_s"]
    assert tagged["completion_rate_per_s"] == pytest.approx(one, rel=0.05)
