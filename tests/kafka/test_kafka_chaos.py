"""Random faults (the nemesis) against the model: invariants hold and every message ends
somewhere definite after the final drain (nothing stays in flight, nothing lost comes back)."""

from __future__ import annotations

import pytest
from kafka_helpers import messages, run_kafka, scenario

NEMESIS = {
    "enabled": True,
    "kinds": ["crash", "partition", "pause", "power_loss", "stop", "restart", "delay"],
    "targets": ["leader", "a_follower", "all_servers", "controller", "client_link", "a_consumer"],
    "mean_interval_s": 2.0,
    "mean_duration_s": 2.0,
}


@pytest.mark.parametrize(
    ("seed", "acks", "unclean"), [(5, "1", True), (10, "all", False), (11, "all", False)]
)
def test_random_faults_keep_invariants_and_settle_every_message(
    seed: int, acks: str, unclean: bool
) -> None:
    data = scenario(
        scenario__duration_s=20.0,
        workload__rate_per_s=1500.0,
        kafka__producer__acks=acks,
        kafka__topic__min_insync_replicas=1 if unclean else 2,
        kafka__topic__unclean_leader_election_enable=unclean,
    )
    data["nemesis"] = NEMESIS
    m = messages(run_kafka(data, seed=seed))  # invariant checks on, fates add up
    assert m["in_flight"] == 0
    assert m["anomalies"]["resurrected"] == 0
    if acks == "all":
        assert m["out_of_order"] == 0  # idempotence keeps each producer's order per partition
