"""Known anomalies: the published Jepsen findings, reproduced with their documented outcome.

Sources:

* Redis, Jepsen 2013 ("Call me maybe: Redis", K. Kingsbury): a partition leaves the master with
  some clients while the sentinels on the majority side promote a replica; both masters accept
  writes, and when the partition heals the old master becomes a replica and discards everything
  it acknowledged since the cut. The Sentinel documentation ("Example 2: basic setup with three
  boxes") describes the same loss and bounds it with `min-replicas-to-write 1` and
  `min-replicas-max-lag`: the isolated master stops accepting writes once no replica has
  acknowledged for max-lag seconds (replicas acknowledge once per second).
* Kafka, Jepsen 2013 ("Call me maybe: Kafka"): the ISR shrinks to the leader alone, the leader
  dies, and a replica outside the ISR is elected: records acknowledged to `acks=all` producers
  are lost. Kafka's answer (KIP-106: `unclean.leader.election.enable` false by default since
  0.11; `min.insync.replicas`): an out-of-sync replica never leads, so nothing acknowledged is
  lost and the partition waits for the old leader instead.

Each test runs the built-in scenario of the case at its CI size (`rksim show NAME` prints it)
and checks the documented outcome on the per-message table, not a number from a previous run.
"""

from __future__ import annotations

import pandas as pd

from simulator import load_scenario, run
from simulator.results import Result


def _run(name: str, overrides: list[str] | None = None) -> tuple[Result, pd.DataFrame]:
    result = run(load_scenario(name, overrides, ci=True), seed=1, check_invariants=True)
    assert result.messages is not None
    return result, result.messages[result.messages["fate"] != "superseded"]


def _partition_window_ms(result: Result) -> tuple[float, float]:
    (fault,) = [f for f in result.summary["faults"] if f["kind"] == "partition"]
    return float(fault["begin_ms"]), float(fault["end_ms"])


def test_jepsen_2013_redis_split_brain_loses_every_write_the_isolated_master_acknowledged() -> None:
    result, m = _run("redis_sentinel_split_brain")
    cut, heal = _partition_window_ms(result)
    acked = m[m["status"] == "acked"]
    before = acked[acked["intended_ms"] < cut]
    during = acked[(acked["intended_ms"] >= cut) & (acked["intended_ms"] < heal)]
    # nothing the replicas had before the cut is lost ...
    assert (before["fate"] == "lost").sum() == 0
    # ... and the clients, which can only reach the old master, keep writing there: it
    # acknowledges them all, and the heal throws them all away (a few sent in the last
    # milliseconds before the heal may reach the new master: allow 1%)
    assert len(during) > 0.9 * result.summary["throughput"]["offered_per_s"] * (heal - cut) / 1e3
    lost = during[during["fate"] == "lost"]
    assert len(lost) >= 0.99 * len(during)
    assert set(lost["cause"]) == {"discarded_on_failover"}


def test_jepsen_2013_redis_min_replicas_to_write_bounds_the_loss_to_max_lag() -> None:
    plain, _ = _run("redis_sentinel_split_brain", ["faults.0.duration_s=6"])
    bounded, m = _run("redis_split_brain_min_replicas")
    spec = load_scenario("redis_split_brain_min_replicas", ci=True)
    max_lag_s = spec.redis.min_replicas_max_lag
    rate = bounded.summary["throughput"]["offered_per_s"]
    lost = bounded.summary["messages"]["lost"]
    # the isolated master accepts writes until no replica has acknowledged for max-lag seconds;
    # acknowledgements come once a second, so the window is max-lag to max-lag + 1 s (plus the
    # ~1 s of writes in flight when it is detected): bounded by the setting, not by the
    # partition's 6 s
    assert lost <= rate * (max_lag_s + 2.0)
    assert lost < 0.5 * plain.summary["messages"]["lost"]
    # after the window the master refuses writes (-NOREPLICAS): they fail, visibly
    assert bounded.summary["messages"]["failed"] > lost
    assert set(m.loc[m["fate"] == "lost", "cause"]) == {"discarded_on_failover"}


def test_jepsen_2013_kafka_unclean_election_loses_records_acknowledged_with_acks_all() -> None:
    result, m = _run("kafka_unclean_election")
    lost = m[m["fate"] == "lost"]
    assert len(lost) > 0
    assert (lost["status"] == "acked").all()  # acknowledged to an acks=all producer
    assert set(lost["cause"]) == {"unclean_election_truncation"}
    # the lost records were acknowledged by the leader alone, between the cut of its
    # followers and its crash: none was sent before the cut
    cut, _ = _partition_window_ms(result)
    assert lost["intended_ms"].min() >= cut


def test_kafka_clean_election_keeps_every_acknowledged_record_of_the_same_faults() -> None:
    for overrides in (
        ["kafka.topic.unclean_leader_election_enable=false"],
        [
            "kafka.topic.unclean_leader_election_enable=false",
            "kafka.topic.min_insync_replicas=2",
        ],
    ):
        _, m = _run("kafka_unclean_election", overrides)
        acked = m[m["status"] == "acked"]
        assert len(acked) > 0.9 * len(m), overrides  # the producers got through after the heal
        assert (acked["fate"] == "lost").sum() == 0, overrides
