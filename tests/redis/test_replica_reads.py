"""Reads from replicas (`client.read_from`), their measured staleness, replica-serve-stale-data.

Setup: 4000 commands/s, half GETs (~2000 reads/s) and half SETs over 1000 keys (2 writes/s per
key), two replicas, 3 s. The lag is a cut of the replication link of replica1 for 1 s (1.0-2.0
s): replica1 keeps serving reads from the data it has (replica-serve-stale-data yes); or
replica1 paused (SIGSTOP) for that second: the reads sent to it wait, then run first when it
resumes, beside the first chunk of the replication stream that waited too, on the data of the
pause's start.

Expected share of stale reads: a read is stale if its key was written (and acknowledged) since
the cut began. Replica1 gets half of the reads, a third of them during the cut; t seconds into
the cut a key has been written with probability 1 - exp(-2 t), on average over the cut
1 - (1 - e^-2) / 2 = 0.57. So ~1/6 x 0.57 = 9.5% of ~6000 reads (~570 reads, Poisson: ±3 sigma
= ±72, ±13%); the tolerance 7-12% covers that and the reads' random split between replicas.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis_support import lag_then_power_loss, run_redis, spec

from simulator import ScenarioError, load_scenario

CUT = [{"at_s": 1.0, "kind": "partition", "groups": [["primary"], ["replica1"]], "duration_s": 1.0}]
PAUSE = [{"at_s": 1.0, "kind": "pause", "target": "replica1", "duration_s": 1.0}]


def _reads(
    read_from: str, faults: list[dict[str, Any]], stale_data: bool = True, repl_timeout: int = 60
) -> Any:
    redis = {
        "replicas": 2,
        "replica_serve_stale_data": stale_data,
        "repl_timeout": repl_timeout,
        "ops": {"read_ratio": 0.5},
        "client": {"read_from": read_from},
    }
    workload = {"rate_per_s": 4000.0, "keys": 1000}
    result = run_redis(spec(redis=redis, faults=faults, duration_s=3.0, workload=workload))
    return result.summary["model"]


def test_reads_from_the_master_are_never_stale_even_with_a_lagging_replica() -> None:
    for lag in (CUT, PAUSE):
        reads = _reads("master", lag)
        assert reads["reads"] > 5000 and reads["replica_reads"] == 0
        assert reads["stale_reads"] == 0


@pytest.mark.parametrize("lag", [CUT, PAUSE], ids=["replication_link_cut", "replica_paused"])
def test_replica_reads_are_stale_while_a_replica_lags_and_fresh_when_it_keeps_up(
    lag: list[dict[str, Any]],
) -> None:
    fresh, lagging = _reads("replicas", []), _reads("replicas", lag)
    assert fresh["replica_reads"] == fresh["reads"] > 5000
    # in sync, a replica is ~one link delay behind: a read sent after a write's reply arrives
    # after the write reached the replica (the race needs a reply plus a request faster than
    # one replication delay), so staleness is rare
    assert fresh["stale_read_share"] <= 0.005
    assert 0.07 <= lagging["stale_read_share"] <= 0.12
    # stale by up to the cut's length; a key written several times meanwhile is versions behind
    assert 100.0 <= lagging["stale_read_staleness_ms_p50"] <= 700.0
    assert lagging["stale_read_staleness_ms_p99"] <= 1050.0
    assert lagging["stale_read_versions_max"] >= 3
    assert lagging["stale_reads_from_master"] == 0


def test_evicted_keys_read_as_nil_are_not_stale_and_every_read_is_judged() -> None:
    # maxmemory a few KB above the empty server: allkeys-lru evicts from the start, and the
    # DELs it journals reach the replicas as any write. A nil read of an evicted key is what
    # the master would answer too, not staleness; and nil answers are reads like any other
    redis = {
        "replicas": 1,
        "maxmemory": 1_005_000,
        "maxmemory_policy": "allkeys-lru",
        "ops": {"read_ratio": 0.5},
    }
    workload = {"rate_per_s": 400.0, "keys": 100}
    reads = {}
    for read_from in ("master", "replicas"):
        result = run_redis(
            spec(
                redis={**redis, "client": {"read_from": read_from}},
                duration_s=2.0,
                workload=workload,
            )
        )
        assert result.summary["messages"]["superseded_by_cause"].get("evicted", 0) > 100
        reads[read_from] = result.summary["model"]
    # the same GETs were sent (same seed, same workload draws), whoever answered them
    assert reads["master"]["reads"] == reads["replicas"]["reads"] > 300
    assert reads["master"]["stale_reads"] == 0
    # an in-sync replica is ~one link delay behind: as in the healthy case above, rarely stale
    assert reads["replicas"]["stale_read_share"] <= 0.005


def test_a_silent_cut_shorter_than_repl_timeout_is_not_noticed_by_the_replica() -> None:
    # a partition sends no FIN or RST: replica1 keeps master_link_status up until repl-timeout
    # (60 s) passes without data or PING, so replica-serve-stale-data no changes nothing here
    quiet = _reads("replicas", CUT, stale_data=False)
    assert quiet["read_errors"] == 0
    assert 0.07 <= quiet["stale_read_share"] <= 0.12


def test_replica_serve_stale_data_no_answers_masterdown_once_repl_timeout_passed() -> None:
    # repl-timeout 1 s and a 2 s cut (1.0-3.0 s of a 4 s run): replica1 serves stale data for
    # the first second, then drops the link and answers -MASTERDOWN until the heal
    cut = [{**CUT[0], "duration_s": 2.0}]
    redis = {
        "replicas": 2,
        "replica_serve_stale_data": False,
        "repl_timeout": 1,
        "ops": {"read_ratio": 0.5},
        "client": {"read_from": "replicas"},
    }
    workload = {"rate_per_s": 4000.0, "keys": 1000}
    result = run_redis(spec(redis=redis, faults=cut, duration_s=4.0, workload=workload))
    reads = result.summary["model"]
    # ~2000 reads/s, half to replica1: ~1000 errors for the second after the timeout (Poisson
    # +-3 sigma ~ +-95), plus up to one replication tick (10 ms, ~20 reads) at the timeout and
    # the heal, and the reads' random split between the replicas (binomial, +-3 sigma ~ +-70)
    assert 830 <= reads["read_errors"] <= 1170
    # and stale reads in the first second only: stale by less than that second
    assert reads["stale_reads"] > 0
    assert reads["stale_read_staleness_ms_p99"] <= 1150.0


def test_reads_from_the_master_are_stale_after_a_failover_lost_acknowledged_writes() -> None:
    redis = {
        "replicas": 2,
        "sentinel": {"count": 3, "quorum": 2, "down_after_milliseconds": 1000},
        "ops": {"read_ratio": 0.5},
    }
    faults = lag_then_power_loss(100.0, 1.5)
    result = run_redis(
        spec(redis=redis, faults=faults, duration_s=5.0, workload={"rate_per_s": 4000.0})
    )
    reads = result.summary["model"]
    assert result.summary["messages"]["lost_by_cause"]["discarded_on_failover"] > 100
    # the new master never had the last acknowledged value of some keys
    assert reads["stale_reads_from_master"] == reads["stale_reads"] > 0
    assert reads["stale_read_staleness_ms_p50"] > 1000.0  # lost ~2 s before the read


def test_read_from_replicas_needs_the_kv_workload_and_replicas() -> None:
    data = spec(redis={"workload": "stream", "replicas": 1, "client": {"read_from": "replicas"}})
    with pytest.raises(ScenarioError) as err:
        load_scenario(data)
    text = str(err.value)
    assert "read_from" in text and "'stream'" in text and "'master'" in text


def test_same_seed_same_stale_reads() -> None:
    assert _reads("replicas", CUT) == _reads("replicas", CUT)
