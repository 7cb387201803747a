"""K3 / K4 on a real cluster: the partition leader dies while its followers are behind.

The two followers are frozen (SIGSTOP) for less than a second while the producer keeps
sending, then the leader is killed (SIGKILL) and the followers are resumed. The followers never
left the ISR (frozen shorter than replica.lag.time.max.ms = 2000 and broker.session.timeout.ms
= 3000), so when the controller fences the dead leader it makes one of them leader in a
*clean* election. Whatever only the old leader had is gone for good: the new leader's epoch
starts below it, and the old leader truncates it when it comes back as a follower.

- acks=1: the leader acknowledged the records it appended alone -> acknowledged records lost
  (Kafka design docs, "Replication"; semantics K3).
- acks=all, min.insync.replicas=2: no record was acknowledged while the followers were frozen
  (the leader waits for every ISR member) -> nothing acknowledged is lost (K4); the records
  retried after the failover are acknowledged by the new leader.

The `test_sim_*` twins run the same settings and fault schedule through the simulator
(kafka_sim.py) and assert the same outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from kafka_clients import ProducerSettings, RecordingProducer, high_watermark, read_partition
from kafka_cluster import KafkaCluster, wait_until
from kafka_sim import SimLoss, failover_scenario, sim_loss

from simulator import run

RATE_PER_S = 500.0
STEADY_S = 1.0  # produce with a healthy ISR first
FROZEN_S = 0.8  # followers frozen while the producer goes on, then the leader is killed
# The case only holds while the followers stay in the ISR: frozen well under
# replica.lag.time.max.ms (2000; the leader checks every 1000) and broker.session.timeout.ms.
MAX_FROZEN_S = 1.5


def producer_settings(acks: str) -> ProducerSettings:
    """Explicit on both sides; idempotence off because acks=1 cannot have it."""
    return ProducerSettings(
        acks=acks,
        enable_idempotence=False,
        linger_ms=5,
        batch_size=16384,
        max_in_flight_requests_per_connection=5,
        retries=2147483647,
        retry_backoff_ms=100,
        request_timeout_ms=10000,
        delivery_timeout_ms=30000,
    )


@dataclass
class FailoverOutcome:
    """What the client saw, and what the partition holds after everything healed."""

    old_leader: int
    followers: list[int]
    new_leader: int
    frozen_s: float
    sent: int
    acked: set[int]
    failed: dict[int, str]
    unanswered: set[int]
    window: set[int]  # sent while the followers were frozen
    acked_before_crash_in_window: set[int]
    lost: set[int]  # acknowledged, not in the log after the heal

    def describe(self) -> str:
        """One line for the session summary and docs/validation.md."""
        return (
            f"sent {self.sent}, acked {len(self.acked)}, failed {len(self.failed)}, "
            f"unanswered {len(self.unanswered)}; sent while frozen {len(self.window)} "
            f"({len(self.acked_before_crash_in_window)} acked before the crash); "
            f"acked but lost {len(self.lost)}; frozen {self.frozen_s:.2f}s; "
            f"leader {self.old_leader} -> {self.new_leader}"
        )


def run_leader_crash_with_frozen_followers(
    kafka: KafkaCluster, topic: str, acks: str, min_insync_replicas: int
) -> FailoverOutcome:
    """Drive the fault schedule; return what the client saw and what the log holds after."""
    kafka.create_topic(
        topic,
        config={
            "min.insync.replicas": str(min_insync_replicas),
            "unclean.leader.election.enable": "false",
        },
    )
    # polled, not read once: a broker that has not applied the new topic yet answers with
    # UNKNOWN_TOPIC_OR_PART (any broker may answer a metadata request)
    before = kafka.wait_for_partition(
        topic, lambda s: s.leader >= 0 and len(s.isr) == 3, what="has a leader and a full ISR"
    )
    leader = before.leader
    followers = [r for r in before.replicas if r != leader]
    producer = RecordingProducer(kafka.bootstrap, topic, producer_settings(acks))

    producer.produce_for(STEADY_S, RATE_PER_S)
    assert producer.flush(30.0) == 0, "steady phase: every record answered"
    assert not producer.log.failed, f"steady phase failures: {producer.log.failed}"
    # The followers have fetched everything (high watermark = log end) before they freeze.
    wait_until(
        lambda: high_watermark(kafka.bootstrap, topic) >= producer.next_id,
        timeout_s=20,
        what="followers caught up before the freeze",
    )

    frozen_at = time.perf_counter()
    kafka.pause(followers)
    try:
        producer.produce_for(FROZEN_S, RATE_PER_S)
        crashed_at = time.perf_counter()
        kafka.crash(leader)
    finally:
        kafka.resume(followers)
    frozen_s = crashed_at - frozen_at
    assert frozen_s < MAX_FROZEN_S, f"followers frozen {frozen_s:.2f}s: the ISR may have shrunk"

    # Keep producing through the failover until the new leader acknowledges.
    def new_leader_acked() -> bool:
        producer.produce_for(0.2, RATE_PER_S)
        return any(t > crashed_at for t in producer.log.acked_s.values())

    wait_until(new_leader_acked, timeout_s=45, what="an acknowledgement after the failover")
    # Any broker may answer the metadata request, and a follower just resumed from SIGSTOP can
    # still hold the image from before the crash (seen in CI: it named the dead leader). Wait
    # until the answer no longer names the dead broker; `describe` keeps the last state seen.
    after = kafka.wait_for_partition(
        topic, lambda s: s.leader not in (leader, -1), what="a leader other than the dead one"
    )
    producer.produce_for(0.5, RATE_PER_S)
    producer.flush(35.0)

    kafka.heal()  # the old leader comes back as a follower and truncates its divergent suffix
    kafka.wait_for_partition(
        topic,
        lambda s: len(s.isr) == 3 and s.leader not in (leader, -1),  # not a pre-crash image
        what="full ISR after restart",
    )
    stored = {message_id for _offset, message_id in read_partition(kafka.bootstrap, topic)}
    log = producer.log
    window = {i for i, t in log.sent_s.items() if frozen_at <= t < crashed_at}
    return FailoverOutcome(
        old_leader=leader,
        followers=followers,
        new_leader=after.leader,
        frozen_s=frozen_s,
        sent=producer.next_id,
        acked=log.acked,
        failed=dict(log.failed),
        unanswered=log.unanswered(),
        window=window,
        acked_before_crash_in_window={
            i for i in window if log.acked_s.get(i, float("inf")) < crashed_at
        },
        lost=log.acked - stored,
    )


def check_acks_1_loss(lost: int, lost_outside_window: int, window: int) -> None:
    """acks=1: acknowledged records are lost, and they are those only the old leader had."""
    assert lost > 0, "acks=1 lost nothing"
    assert lost_outside_window == 0, f"{lost_outside_window} lost records outside the window"
    # the leader acknowledges alone within a round trip: most of the window was acked, then lost
    assert lost >= window // 2, (lost, window)


@pytest.mark.real_kafka
@pytest.mark.xdist_group("kafka")
def test_acks_1_loses_acknowledged_records_when_the_leader_dies_before_followers_fetch(
    kafka: KafkaCluster, topic: str, report_outcome: Callable[[str], None]
) -> None:
    outcome = run_leader_crash_with_frozen_followers(kafka, topic, acks="1", min_insync_replicas=1)
    report_outcome(outcome.describe())
    # a clean election: a follower that was in the ISR became leader
    assert outcome.new_leader in outcome.followers, outcome.describe()
    lost, window = outcome.lost, outcome.window
    assert lost, "acks=1 lost nothing"
    assert lost <= window, f"{len(lost - window)} lost records outside the window"
    # The old leader acknowledged alone while the followers were frozen, and all of it is lost:
    # every record of the window acknowledged before the crash, except the first few that a
    # follower fetch already in flight when SIGSTOP landed can carry (as in the acks=all case).
    # How many it acknowledged before the crash is the loaded machine's pace: measured and
    # reported above, not assumed (the twin's fixed-pace simulation asserts most of the window).
    survived = outcome.acked_before_crash_in_window - lost
    assert len(survived) <= 10 and sorted(survived) == sorted(window)[: len(survived)], (
        sorted(survived),
        outcome.describe(),
    )


@pytest.mark.real_kafka
@pytest.mark.xdist_group("kafka")
def test_acks_all_with_min_insync_2_loses_nothing_when_the_leader_dies(
    kafka: KafkaCluster, topic: str, report_outcome: Callable[[str], None]
) -> None:
    outcome = run_leader_crash_with_frozen_followers(
        kafka, topic, acks="all", min_insync_replicas=2
    )
    report_outcome(outcome.describe())
    assert outcome.new_leader in outcome.followers, outcome.describe()
    assert outcome.lost == set(), f"acks=all lost acknowledged records: {sorted(outcome.lost)}"
    # while the followers were frozen the leader acknowledged nothing (it waits for the ISR),
    # except the very first records of the window: a follower fetch already in flight when
    # SIGSTOP landed can still carry them (seen once in CI: the first 6 of the window) ...
    early = outcome.acked_before_crash_in_window
    first = sorted(outcome.window)[: len(early)]
    assert len(early) <= 10 and sorted(early) == first, sorted(early)
    # ... and the records sent then were acknowledged later, by the new leader (retries)
    window = outcome.window
    assert window and window <= outcome.acked, (len(window), outcome.failed)


def run_sim(acks: str, min_insync_replicas: int) -> SimLoss:
    spec = failover_scenario(
        producer_settings(acks),
        min_insync_replicas,
        rate_per_s=RATE_PER_S,
        steady_s=STEADY_S,
        frozen_s=FROZEN_S,
    )
    return sim_loss(run(spec, seed=1), STEADY_S * 1000, (STEADY_S + FROZEN_S) * 1000)


def test_sim_acks_1_loses_acknowledged_records_when_the_leader_dies() -> None:
    sim = run_sim("1", min_insync_replicas=1)
    check_acks_1_loss(sim.lost, sim.lost - sim.lost_in_window, sim.window)
    assert set(sim.lost_by_cause) == {"leader_failed_before_replication"}, sim


def test_sim_acks_all_with_min_insync_2_loses_nothing_when_the_leader_dies() -> None:
    sim = run_sim("all", min_insync_replicas=2)
    assert sim.lost == 0, sim
    assert sim.acked > 0 and sim.failed == 0, sim
